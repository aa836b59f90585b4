/*-------------------------------------------------------------------------
 *
 * test_visitdims.c
 *	  Unit tests of the pure visit dimensions (src/visitdims.c): device
 *	  classes of User-Agent strings seen in the wild, referring hosts, and
 *	  country codes.  Every input is passed as a pointer and a length, and
 *	  some lengths stop short of the string, as a text datum's would.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "unit.h"
#include "visitdims.h"

typedef struct ua_case
{
	visit_device want;
	const char *ua;
} ua_case;

/*
 * Real User-Agent strings, as browsers, apps and bots send them, with the
 * class each must get.  The strings made up to test one rule are in main().
 */
static const ua_case ua_cases[] = {
	/* desktop browsers on Windows, macOS, Linux and ChromeOS */
	{DEVICE_DESKTOP, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"},
	{DEVICE_DESKTOP, "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"},
	{DEVICE_DESKTOP, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0"},
	{DEVICE_DESKTOP, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 OPR/106.0.0.0"},
	{DEVICE_DESKTOP, "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36"},
	{DEVICE_DESKTOP, "Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko"},
	{DEVICE_DESKTOP, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15"},
	{DEVICE_DESKTOP, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"},
	{DEVICE_DESKTOP, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0"},
	{DEVICE_DESKTOP, "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"},
	{DEVICE_DESKTOP, "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"},
	{DEVICE_DESKTOP, "Mozilla/5.0 (X11; FreeBSD amd64; rv:109.0) Gecko/20100101 Firefox/115.0"},
	{DEVICE_DESKTOP, "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"},
	/* "Tablet PC 2.0" is a Windows 7 laptop component, not a tablet */
	{DEVICE_DESKTOP, "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; Trident/4.0; SLCC2; .NET CLR 2.0.50727; .NET CLR 3.5.30729; .NET CLR 3.0.30729; Media Center PC 6.0; Tablet PC 2.0)"},
	/* by design: Safari on iPadOS 13+ and a Surface RT read as desktops */
	{DEVICE_DESKTOP, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.2 Safari/605.1.15"},
	{DEVICE_DESKTOP, "Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.2; ARM; Trident/6.0; Touch)"},
	/* "CrOS" must be a word: "Microsoft" does not make a desktop */
	{DEVICE_OTHER, "Microsoft BITS/7.8"},

	/* phones: iPhone, Android browsers and in-app views, older platforms */
	{DEVICE_MOBILE, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1"},
	{DEVICE_MOBILE, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1"},
	{DEVICE_MOBILE, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/121.0 Mobile/15E148 Safari/605.1.15"},
	{DEVICE_MOBILE, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) GSA/294.0.589375493 Mobile/15E148 Safari/604.1"},
	{DEVICE_MOBILE, "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 298.0.0.19.114 (iPhone13,2; iOS 16_6; en_US; en; scale=3.00; 1170x2532; 509998064)"},
	{DEVICE_MOBILE, "Mozilla/5.0 (iPod touch; CPU iPhone OS 12_5_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1.2 Mobile/15E148 Safari/604.1"},
	{DEVICE_MOBILE, "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36"},
	{DEVICE_MOBILE, "Mozilla/5.0 (Linux; Android 12; Pixel 6) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/103.0.5060.71 Mobile Safari/537.36"},
	{DEVICE_MOBILE, "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36"},
	{DEVICE_MOBILE, "Mozilla/5.0 (Android 14; Mobile; rv:121.0) Gecko/121.0 Firefox/121.0"},
	{DEVICE_MOBILE, "Mozilla/5.0 (Linux; Android 12; SM-G991B Build/SP1A.210812.016; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/108.0.5359.128 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/398.0.0.29.112;]"},
	{DEVICE_MOBILE, "Mozilla/5.0 (Linux; U; Android 10; en-US; RMX1911 Build/QKQ1.200209.002) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/78.0.3904.108 UCBrowser/13.4.0.1306 Mobile Safari/537.36"},
	{DEVICE_MOBILE, "Mozilla/5.0 (Linux; U; Android 4.0.3; ko-kr; LG-L160L Build/IML74K) AppleWebkit/534.30 (KHTML, like Gecko) Version/4.0 Mobile Safari/534.30"},
	{DEVICE_MOBILE, "Opera/9.80 (Android; Opera Mini/7.5.33361/31.1448; U; en) Presto/2.8.119 Version/11.1010"},
	{DEVICE_MOBILE, "Opera/9.80 (J2ME/MIDP; Opera Mini/9.80 (S60; SymbOS; Opera Mobi/23.348; U; en) Presto/2.5.25 Version/10.54"},
	{DEVICE_MOBILE, "Mozilla/5.0 (compatible; MSIE 10.0; Windows Phone 8.0; Trident/6.0; IEMobile/10.0; ARM; Touch; NOKIA; Lumia 920)"},
	{DEVICE_MOBILE, "Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 950) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.116 Mobile Safari/537.36 Edge/15.15063"},
	{DEVICE_MOBILE, "Mozilla/5.0 (BB10; Touch) AppleWebKit/537.10+ (KHTML, like Gecko) Version/10.0.9.2372 Mobile Safari/537.10+"},
	{DEVICE_MOBILE, "Mozilla/5.0 (BlackBerry; U; BlackBerry 9780; en-GB) AppleWebKit/534.8+ (KHTML, like Gecko) Version/6.0.0.546 Mobile Safari/534.8+"},
	{DEVICE_MOBILE, "Mozilla/5.0 (Mobile; LYF/F300B/LYF-F300B-001-01-15-130718-i;Android; rv:48.0) Gecko/48.0 Firefox/48.0 KAIOS/2.5"},
	/* Android's own HTTP client names Android without "Mobile": a phone */
	{DEVICE_MOBILE, "Dalvik/2.1.0 (Linux; U; Android 11; SM-A515F Build/RP1A.200720.012)"},
	/* CUBOT is a phone brand, not a bot */
	{DEVICE_MOBILE, "Mozilla/5.0 (Linux; Android 6.0; CUBOT MAX) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/72.0.3626.121 Mobile Safari/537.36"},

	/* tablets: iPad, Android tablets, Fire tablets, older ones */
	{DEVICE_TABLET, "Mozilla/5.0 (iPad; CPU OS 12_5_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1.2 Mobile/15E148 Safari/604.1"},
	{DEVICE_TABLET, "Mozilla/5.0 (iPad; CPU OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1"},
	/* an iPadOS web view asking for desktop pages keeps "Mobile/" */
	{DEVICE_TABLET, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 DuckDuckGo/7"},
	{DEVICE_TABLET, "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"},
	{DEVICE_TABLET, "Mozilla/5.0 (Linux; Android 11; SM-T870) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/96.0.4664.104 Safari/537.36"},
	{DEVICE_TABLET, "Mozilla/5.0 (Linux; Android 12; SAMSUNG SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/17.0 Chrome/96.0.4664.104 Safari/537.36"},
	{DEVICE_TABLET, "Mozilla/5.0 (Linux; Android 10; Lenovo TB-X606F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/96.0.4664.92 Safari/537.36"},
	{DEVICE_TABLET, "Mozilla/5.0 (Linux; Android 4.4.2; Nexus 7 Build/KOT49H) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/34.0.1847.114 Safari/537.36"},
	{DEVICE_TABLET, "Mozilla/5.0 (Android 13; Tablet; rv:121.0) Gecko/121.0 Firefox/121.0"},
	{DEVICE_TABLET, "Mozilla/5.0 (Linux; Android 9; KFMAWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/118.3.4 like Chrome/118.0.5993.159 Safari/537.36"},
	{DEVICE_TABLET, "Mozilla/5.0 (Linux; U; Android 4.0.3; en-us; KFTT Build/IML74K) AppleWebKit/535.19 (KHTML, like Gecko) Silk/3.13 Safari/535.19 Silk-Accelerated=true"},
	{DEVICE_TABLET, "Mozilla/5.0 (Linux; U; Android 2.3.4; en-us; Kindle Fire Build/GINGERBREAD) AppleWebKit/533.1 (KHTML, like Gecko) Version/4.0 Mobile Safari/533.1"},
	{DEVICE_TABLET, "Mozilla/5.0 (X11; U; Linux armv7l like Android; en-us) AppleWebKit/531.2+ (KHTML, like Gecko) Version/5.0 Safari/531.2+ Kindle/3.0+"},
	{DEVICE_TABLET, "Mozilla/5.0 (PlayBook; U; RIM Tablet OS 2.1.0; en-US) AppleWebKit/536.2+ (KHTML, like Gecko) Version/7.2.1.0 Safari/536.2+"},

	/* search engines and SEO crawlers */
	{DEVICE_BOT, "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
	{DEVICE_BOT, "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; +http://www.google.com/bot.html) Chrome/120.0.6099.216 Safari/537.36"},
	/* the smartphone Googlebot is an Android phone's string: bot wins */
	{DEVICE_BOT, "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.216 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
	{DEVICE_BOT, "Googlebot-Image/1.0"},
	{DEVICE_BOT, "AdsBot-Google (+http://www.google.com/adsbot.html)"},
	{DEVICE_BOT, "Mozilla/5.0 (compatible; Google-InspectionTool/1.0)"},
	{DEVICE_BOT, "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"},
	{DEVICE_BOT, "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36"},
	{DEVICE_BOT, "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/534+ (KHTML, like Gecko) BingPreview/1.0b"},
	{DEVICE_BOT, "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)"},
	{DEVICE_BOT, "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)"},
	{DEVICE_BOT, "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)"},
	{DEVICE_BOT, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)"},
	{DEVICE_BOT, "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)"},
	{DEVICE_BOT, "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)"},
	{DEVICE_BOT, "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)"},
	{DEVICE_BOT, "Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)"},
	{DEVICE_BOT, "Mozilla/5.0 (Linux; Android 7.0;) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)"},
	{DEVICE_BOT, "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)"},
	{DEVICE_BOT, "CCBot/2.0 (https://commoncrawl.org/faq/)"},

	/* AI crawlers and fetchers */
	{DEVICE_BOT, "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; +https://openai.com/gptbot)"},
	{DEVICE_BOT, "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0; +https://openai.com/bot"},
	{DEVICE_BOT, "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)"},
	{DEVICE_BOT, "meta-externalagent/1.1 (+https://developers.facebook.com/docs/sharing/webmasters/crawler)"},

	/* link previews in social networks and messengers */
	{DEVICE_BOT, "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"},
	{DEVICE_BOT, "Twitterbot/1.0"},
	{DEVICE_BOT, "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)"},
	{DEVICE_BOT, "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"},
	{DEVICE_BOT, "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)"},
	{DEVICE_BOT, "WhatsApp/2.23.20.0 A"},
	{DEVICE_BOT, "TelegramBot (like TwitterBot)"},
	{DEVICE_BOT, "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5"},
	/* iMessage's preview: a Mac Safari string that names two bots */
	{DEVICE_BOT, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0"},
	{DEVICE_BOT, "http.rb/5.1.1 (Mastodon/4.2.1; +https://mastodon.social/)"},

	/* command-line tools, HTTP libraries, headless browsers, monitors */
	{DEVICE_BOT, "curl/8.4.0"},
	{DEVICE_BOT, "Wget/1.21.4"},
	{DEVICE_BOT, "python-requests/2.31.0"},
	{DEVICE_BOT, "Python-urllib/3.11"},
	{DEVICE_BOT, "Python/3.11 aiohttp/3.9.1"},
	{DEVICE_BOT, "Go-http-client/1.1"},
	{DEVICE_BOT, "Go-http-client/2.0"},
	{DEVICE_BOT, "Java/17.0.9"},
	{DEVICE_BOT, "Apache-HttpClient/4.5.14 (Java/17.0.9)"},
	{DEVICE_BOT, "libwww-perl/6.72"},
	{DEVICE_BOT, "axios/1.6.2"},
	{DEVICE_BOT, "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)"},
	{DEVICE_BOT, "PostmanRuntime/7.36.0"},
	{DEVICE_BOT, "Scrapy/2.11.0 (+https://scrapy.org)"},
	{DEVICE_BOT, "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.109 Safari/537.36"},
	{DEVICE_BOT, "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1"},
	{DEVICE_BOT, "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse"},
	{DEVICE_BOT, "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)"},
	{DEVICE_BOT, "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)"},

	/* apps' HTTP clients that name no device (okhttp: see visitdims.c) */
	{DEVICE_OTHER, "okhttp/4.12.0"},
	{DEVICE_OTHER, "com.apple.WebKit.Networking/8615.7.1.10.1 CFNetwork/1410.1 Darwin/22.6.0"},

	/* TVs, streaming sticks and consoles */
	{DEVICE_OTHER, "Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 76.0.3809.146/6.0 TV Safari/537.36"},
	{DEVICE_OTHER, "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.79 Safari/537.36 WebAppManager"},
	{DEVICE_OTHER, "Mozilla/5.0 (Linux; Android 5.1; AFTS Build/LMY47O) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/41.99900.2250.0242 Safari/537.36"},
	{DEVICE_OTHER, "Mozilla/5.0 (X11; Linux armv7l) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/78.0.3904.108 Safari/537.36 CrKey/1.44.191160"},
	{DEVICE_OTHER, "Roku/DVP-9.10 (519.10E04111A)"},
	{DEVICE_OTHER, "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 Safari/537.36 Edge/18.18363"},
	{DEVICE_OTHER, "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Safari/605.1.15"},
	{DEVICE_OTHER, "Mozilla/5.0 (PlayStation Vita 3.61) AppleWebKit/537.73 (KHTML, like Gecko) Silk/3.2"},
	{DEVICE_OTHER, "Mozilla/5.0 (Nintendo Switch; WifiWebAuthApplet) AppleWebKit/606.4 (KHTML, like Gecko) NF/6.0.1.15.4 NintendoBrowser/5.1.0.20393"},
};

/* class_is checks the class of the first len bytes of ua, and says why not */
static int
class_is(const char *ua, size_t len, visit_device want)
{
	visit_device got = visit_device_class(ua, len);

	if (got != want)
		fprintf(stderr, "  \"%.*s\": got %s, want %s\n", (int) len, ua,
				visit_device_name(got), visit_device_name(want));
	return got == want;
}

/*
 * referrer_is checks the status and the value visit_referrer_host gives
 * for the first len bytes of ref.
 */
static int
referrer_is(const char *ref, size_t len, visit_referrer_status want_st,
			const char *want)
{
	char		out[VISIT_HOST_BUFSIZE];
	size_t		out_len = (size_t) -1;
	visit_referrer_status st;

	memset(out, 'X', sizeof(out));
	st = visit_referrer_host(ref, len, out, &out_len);
	if (st != want_st || out_len != strlen(want) || strcmp(out, want) != 0)
	{
		fprintf(stderr, "  \"%.*s\": got %d \"%s\", want %d \"%s\"\n",
				(int) len, ref, (int) st, out, (int) want_st, want);
		return 0;
	}
	return 1;
}

/* host_of is referrer_is for a NUL-terminated Referer that has a host */
static int
host_of(const char *ref, const char *want)
{
	return referrer_is(ref, strlen(ref), VISIT_REFERRER_HOST, want);
}

/* invalid checks that a NUL-terminated Referer gives "other" */
static int
invalid(const char *ref)
{
	return referrer_is(ref, strlen(ref), VISIT_REFERRER_INVALID, "other");
}

/* country_is checks visit_country_code on the first len bytes of in */
static int
country_is(const char *in, size_t len, const char *want)
{
	char		out[3] = {'X', 'X', 'X'};
	bool		ok = visit_country_code(in, len, out);

	if (want == NULL)
		return !ok && out[0] == '\0';
	return ok && strcmp(out, want) == 0;
}

int
main(void)
{
	char		big[8192];
	char		host[300];
	char		want[VISIT_HOST_BUFSIZE];
	char		ref[400];

	/* every listed User-Agent gets its class */
	for (size_t i = 0; i < sizeof(ua_cases) / sizeof(ua_cases[0]); i++)
		EXPECT(class_is(ua_cases[i].ua, strlen(ua_cases[i].ua), ua_cases[i].want));

	/* at least sixty of them */
	EXPECT(sizeof(ua_cases) / sizeof(ua_cases[0]) >= 60);

	/* nothing, or nothing to go on, is "other" */
	EXPECT(class_is("", 0, DEVICE_OTHER));
	EXPECT(class_is("-", 1, DEVICE_OTHER));
	EXPECT(class_is("Mozilla/5.0", 11, DEVICE_OTHER));
	EXPECT(class_is("asdf qwer 1234", 14, DEVICE_OTHER));
	EXPECT(class_is("\x01\x02\xff\xfe\x80\0", 6, DEVICE_OTHER));

	/* only len bytes count: cut before "bot", a Googlebot string is not one */
	EXPECT(class_is("Googlebot/2.1", 6, DEVICE_OTHER));
	EXPECT(class_is("Mozilla/5.0 (iPhone; CPU", 11, DEVICE_OTHER));
	/* "Android 10; K) " without the "Mobile" that follows is a tablet */
	EXPECT(class_is("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 Mobile", 35, DEVICE_TABLET));
	/* ... and a token that ends exactly at len counts */
	EXPECT(class_is("curl/8.4.0", 4, DEVICE_BOT));
	EXPECT(class_is("iPadxxxx", 4, DEVICE_TABLET));

	/* ASCII case does not matter */
	EXPECT(class_is("GOOGLEBOT/2.1", 13, DEVICE_BOT));
	{
		const char *s = "mozilla/5.0 (iphone; cpu iphone os 17_2 like mac os x)";

		EXPECT(class_is(s, strlen(s), DEVICE_MOBILE));
	}

	/* "bot" must end a word, and "bots" does; "cubot" is a phone */
	EXPECT(class_is("Mozilla/5.0 (X11; Linux x86_64) Botanic/1.0", 44, DEVICE_DESKTOP));
	EXPECT(class_is("see example.com/bots)", 21, DEVICE_BOT));
	EXPECT(class_is("CUBOT_P20", 9, DEVICE_OTHER));
	EXPECT(class_is("CUBOT_P20 bot", 13, DEVICE_BOT));
	/* "http" in okhttp does not count, but a URL beside it does */
	EXPECT(class_is("okhttp/3.12.1 (+https://example.com/)", 37, DEVICE_BOT));
	/* "scan" in CamScanner, the app with its own browser, is no scanner */
	EXPECT(class_is("Mozilla/5.0 (Linux; Android 13) Mobile CamScanner/6.55", 55, DEVICE_MOBILE));
	EXPECT(class_is("Mozilla/5.0 (Linux; Android 13) Mobile Scanner/1.0", 51, DEVICE_BOT));
	/* "Tablet PC" is no tablet, "Tablet" is */
	EXPECT(class_is("Mozilla/4.0 (compatible; Tablet PC 2.0)", 39, DEVICE_OTHER));
	EXPECT(class_is("Mozilla/4.0 (compatible; Tablet)", 32, DEVICE_TABLET));
	/* "SM-T" starts a word; "ASM-T" is not a Samsung tablet */
	EXPECT(class_is("(Linux; Android 9; ASM-T100) Mobile", 35, DEVICE_MOBILE));
	/* "OMI/" is Opera on a TV, "XiaoMi/" a phone's browser */
	EXPECT(class_is("Mozilla/5.0 (Linux armv7l) OMI/4.8.0", 36, DEVICE_OTHER));
	EXPECT(class_is("Mozilla/5.0 (Linux; Android 12) Mobile XiaoMi/MiuiBrowser", 58, DEVICE_MOBILE));

	/* a bot token at the end of 8 kB of padding is found */
	memset(big, 'a', sizeof(big));
	memcpy(big + sizeof(big) - 3, "bot", 3);
	EXPECT(class_is(big, sizeof(big), DEVICE_BOT));
	EXPECT(class_is(big, sizeof(big) - 1, DEVICE_OTHER));

	/* the names of the classes */
	EXPECT(strcmp(visit_device_name(DEVICE_DESKTOP), "desktop") == 0);
	EXPECT(strcmp(visit_device_name(DEVICE_MOBILE), "mobile") == 0);
	EXPECT(strcmp(visit_device_name(DEVICE_TABLET), "tablet") == 0);
	EXPECT(strcmp(visit_device_name(DEVICE_BOT), "bot") == 0);
	EXPECT(strcmp(visit_device_name(DEVICE_OTHER), "other") == 0);
	EXPECT(strcmp(visit_device_name((visit_device) 99), "other") == 0);

	/* Referer: empty is a direct visit */
	EXPECT(referrer_is("", 0, VISIT_REFERRER_DIRECT, "direct"));
	EXPECT(referrer_is("https://example.com/", 0, VISIT_REFERRER_DIRECT, "direct"));

	/* Referer: no scheme, a bad scheme, or no host is invalid */
	EXPECT(invalid("www.example.com/path"));
	EXPECT(invalid("example.com"));
	EXPECT(invalid("//example.com/"));
	EXPECT(invalid("https://"));
	EXPECT(invalid("https:///path"));
	EXPECT(invalid("https://?q=1"));
	EXPECT(invalid("https://user@/"));
	EXPECT(invalid("file:///etc/passwd"));
	EXPECT(invalid("about:blank"));
	EXPECT(invalid("https:/example.com/"));
	EXPECT(invalid("1http://example.com/"));
	EXPECT(invalid("ht tp://example.com/"));
	EXPECT(invalid(" https://example.com/"));
	EXPECT(invalid("https ://example.com/"));

	/* Referer: a host with a character outside letters, digits, "-._" */
	EXPECT(invalid("https://exa mple.com/"));
	EXPECT(invalid("https://example.com /"));
	EXPECT(invalid("https://ex%41mple.com/"));
	EXPECT(invalid("https://b\xc3\xbc" "cher.example/"));
	EXPECT(invalid("https://exa~mple.com/"));
	EXPECT(invalid("https://example.com\x01/"));

	/* Referer: empty labels; only one final dot is dropped */
	EXPECT(invalid("https://./"));
	EXPECT(invalid("https://.example.com/"));
	EXPECT(invalid("https://www..example.com/"));
	EXPECT(invalid("https://example.com../"));
	EXPECT(host_of("https://example.com./", "example.com"));
	EXPECT(host_of("https://example.com.:8443/x", "example.com"));

	/* Referer: ports are empty or 0..65535 */
	EXPECT(host_of("http://example.com:8080/x", "example.com"));
	EXPECT(host_of("http://example.com:65535", "example.com"));
	EXPECT(host_of("http://example.com:/x", "example.com"));
	EXPECT(invalid("http://example.com:65536/"));
	EXPECT(invalid("http://example.com:99999999999999999999999/"));
	EXPECT(invalid("http://example.com:80a/"));
	EXPECT(invalid("http://example.com:80:81/"));

	/* Referer: IPv6 literals keep their brackets, lowercased */
	EXPECT(host_of("http://[2001:DB8::1]:8080/path", "[2001:db8::1]"));
	EXPECT(host_of("http://[::1]/", "[::1]"));
	EXPECT(host_of("https://user@[::ffff:192.0.2.1]/", "[::ffff:192.0.2.1]"));
	EXPECT(invalid("http://[::1/"));
	EXPECT(invalid("http://[]/"));
	EXPECT(invalid("http://[zz::1]/"));
	EXPECT(invalid("http://[1:2:3:4:5:6:7:8:9]/"));
	EXPECT(invalid("http://[fe80::1%25eth0]/"));
	EXPECT(invalid("http://[::1]x/"));
	EXPECT(host_of("http://192.0.2.1:80/", "192.0.2.1"));

	/* Referer: 253 bytes of host is the limit, before the final dot */
	memset(host, 'a', sizeof(host));
	for (int i = 63; i < 253; i += 64)
		host[i] = '.';			/* labels of 63, 63, 63 and 61 bytes */
	snprintf(want, sizeof(want), "%.253s", host);
	snprintf(ref, sizeof(ref), "https://%.253s/", host);
	EXPECT(host_of(ref, want));
	snprintf(ref, sizeof(ref), "https://%.253s./", host);
	EXPECT(host_of(ref, want));
	snprintf(ref, sizeof(ref), "https://%.254s/", host);
	EXPECT(invalid(ref));
	snprintf(ref, sizeof(ref), "https://%.254s./", host);
	EXPECT(invalid(ref));
	snprintf(ref, sizeof(ref), "https://%.300s/", host);
	EXPECT(invalid(ref));

	/* Referer: only len bytes count */
	EXPECT(referrer_is("https://example.com.evil.example/", 19, VISIT_REFERRER_HOST, "example.com"));
	EXPECT(referrer_is("https://example.com:8080", 20, VISIT_REFERRER_HOST, "example.com"));
	EXPECT(referrer_is("https://[::1]/", 12, VISIT_REFERRER_INVALID, "other"));
	EXPECT(referrer_is("https://x", 7, VISIT_REFERRER_INVALID, "other"));

	/* Referer: hosts, lowercased, whatever follows them */
	EXPECT(host_of("https://www.Example.COM/path?q", "www.example.com"));
	EXPECT(host_of("HTTPS://EXAMPLE.COM", "example.com"));
	EXPECT(host_of("https://example.com?q=1", "example.com"));
	EXPECT(host_of("https://example.com#top", "example.com"));
	EXPECT(host_of("https://example.com/a b\x01\xff", "example.com"));
	EXPECT(host_of("https://user:pass@example.com/", "example.com"));
	EXPECT(host_of("https://example.com:8080@evil.example/", "evil.example"));
	EXPECT(host_of("https://a_b.example.com/", "a_b.example.com"));
	EXPECT(host_of("https://xn--bcher-kva.example/", "xn--bcher-kva.example"));
	EXPECT(host_of("http://localhost:3000/", "localhost"));
	EXPECT(host_of("h+t.t-p://example.com/", "example.com"));
	EXPECT(host_of("android-app://com.google.android.gm/", "com.google.android.gm"));
	EXPECT(host_of("android-app://com.google.android.googlequicksearchbox/https/www.google.com",
				   "com.google.android.googlequicksearchbox"));
	EXPECT(host_of("https://t.co/", "t.co"));
	EXPECT(host_of("https://l.facebook.com/", "l.facebook.com"));

	/* country: exactly two ASCII letters */
	EXPECT(country_is("", 0, NULL));
	EXPECT(country_is("U", 1, NULL));
	EXPECT(country_is("USA", 3, NULL));
	EXPECT(country_is("u1", 2, NULL));
	EXPECT(country_is("T1", 2, NULL));	/* Cloudflare's Tor marker */
	EXPECT(country_is(" U", 2, NULL));
	EXPECT(country_is("U\0", 2, NULL));
	EXPECT(country_is("\xc3\xa9", 2, NULL));	/* e-acute in UTF-8 */
	EXPECT(country_is("U\xd3", 2, NULL));	/* 'S' | 0x80 */
	EXPECT(country_is("@[", 2, NULL));	/* the bytes around 'A'..'Z' */
	EXPECT(country_is("`{", 2, NULL));
	EXPECT(country_is("us", 2, "US"));
	EXPECT(country_is("US", 2, "US"));
	EXPECT(country_is("gB", 2, "GB"));
	EXPECT(country_is("za", 2, "ZA"));
	EXPECT(country_is("XX", 2, "XX"));	/* unknown, for some proxies */
	EXPECT(country_is("usa", 2, "US"));	/* only len bytes count */

	return unit_done("test_visitdims");
}
