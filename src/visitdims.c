/*-------------------------------------------------------------------------
 *
 * visitdims.c
 *	  Pure reduction of a visit's headers to analytics dimension values (no
 *	  PostgreSQL headers); see visitdims.h.
 *
 * Device class.  A User-Agent is matched by case-insensitive substrings,
 * in the spirit of ua-parser, Matomo's DeviceDetector and the isbot list
 * (npm "isbot"), with the first rule that applies winning:
 *	1. bot: any BOT token in the table below.  Bots come first: many
 *	   of them copy a browser's string and add their name (the smartphone
 *	   Googlebot is a complete Android phone Chrome string);
 *	2. other: a smart TV, streaming stick, console or headset (TV
 *	   tokens), before the tablet and desktop rules that their strings
 *	   would otherwise meet (an Xbox says "Windows NT", a Fire TV says
 *	   "Android" without "Mobile");
 *	3. tablet: a tablet's name (TABLET tokens); or a browser string (it has
 *	   "Mozilla/") that names Android but not "Mobi", which is Chrome's
 *	   convention (and Firefox's, Samsung Internet's) for a tablet, kept
 *	   by Chrome's reduced strings ("Android 10; K"); or "Macintosh" with
 *	   "Mobile/", which only iPadOS WebKit views asking for desktop pages
 *	   send;
 *	4. mobile: a MOBILE token ("Mobi" covers "Mobile", "Mobile Safari",
 *	   "Opera Mobi" and "IEMobile").  Any Android string left is mobile:
 *	   an app's own HTTP client (Dalvik) or the Presto Opera Mini names
 *	   Android without following the browsers' convention, and most
 *	   Android devices are phones;
 *	5. desktop: a DESKTOP token;
 *	6. other: everything else, including the empty string.
 *
 * By design, and as every classifier that reads only the User-Agent must:
 * Safari on iPadOS 13 and later sends the same string as Safari on a Mac,
 * so it is desktop; so are "request desktop site" on a phone, Samsung DeX,
 * Windows tablets and Chromebooks.
 *
 * Bot tokens are generic words (bot, crawl, spider, ...), "http" (a URL or
 * an HTTP library's name; isbot has the same rule), the names of HTTP
 * libraries and tools that lack "http", and named agents that have none of
 * those words (facebookexternalhit, WhatsApp's link preview, ...).  The
 * generic "bot" covers Googlebot, bingbot, YandexBot, DuckDuckBot,
 * Applebot, AhrefsBot, SemrushBot, MJ12bot, PetalBot, GPTBot, ClaudeBot,
 * Twitterbot, LinkedInBot, Slackbot, Discordbot, TelegramBot, Facebot,
 * AdsBot-Google and UptimeRobot.
 *
 * okhttp is not a bot token.  It is the HTTP client that most Android apps
 * are built on; a bare "okhttp/4.x" string is an app on someone's phone
 * following the link itself (a podcast or media player fetching an
 * episode, an app opening its own link), which is usually a person's
 * visit rather than a crawler's.  It names no device, so it is "other".
 * The same holds for iOS apps' CFNetwork strings and Flutter's "Dart/".
 * Dalvik, Android's built-in client, names Android, so it is mobile.
 *
 * Matching ignores ASCII case and makes one pass over the User-Agent,
 * comparing each offset only with the tokens that may start there, so the cost
 * is linear in the length whatever the bytes are: under 1 us for a
 * browser's string, and about 50 us for 8 kB built to be slow (on a 2020s
 * x86 core).
 *
 * Referring host.  A Referer is reduced to its host when it reads
 *	scheme "://" [userinfo "@"] host [":" port] [path, query or fragment]
 * where:
 *	- the scheme is a letter followed by letters, digits, '+', '-' and
 *	  '.' (RFC 3986 section 3.1), any scheme, so that an Android app's
 *	  "android-app://com.google.android.gm/" gives the app's package name;
 *	- the authority ends at the first '/', '?' or '#', and the userinfo
 *	  runs to its last '@' (browsers drop userinfo from a Referer, so it
 *	  only shows in hand-made ones);
 *	- the host is an IPv6 literal in brackets that inet_pton accepts (kept
 *	  with its brackets, hex digits lowercased; a zone identifier is not
 *	  accepted), or a name of ASCII letters, digits, '-', '.' and '_' (the
 *	  underscore is not valid in a host name but browsers send it), with
 *	  one final dot removed, no empty label, and 1 to 253 bytes long.  A
 *	  percent escape or a byte above 0x7F makes the Referer invalid: a
 *	  browser sends a name in its ASCII (punycode) form;
 *	- the port, if the ':' is there, is empty or at most 65535.
 * Whatever follows the authority is not read.  The input is not trimmed:
 * a space anywhere in the authority makes the Referer invalid.
 *
 * Country code: two ASCII letters, upper-cased; nothing else.
 *
 *-------------------------------------------------------------------------
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include "chars.h"
#include "visitdims.h"

/* RFC 6335 section 6: ports are 16-bit numbers */
#define VISIT_MAX_PORT	65535

/*
 * The token groups.  A token belongs to one group; the scan records which
 * groups occur, and visit_device_class applies the rules to that set.  The
 * PROBE groups hold single words that rule 3 combines.
 */
typedef enum ua_group
{
	GROUP_BOT = 0,
	GROUP_TV,
	GROUP_TABLET,
	GROUP_MOBILE,
	GROUP_DESKTOP,
	PROBE_ANDROID,
	PROBE_MOZILLA,
	PROBE_MOBI,
	PROBE_MACINTOSH,
	PROBE_MOBILE_SLASH
} ua_group;

#define GROUP_BIT(g)	(1u << (g))

/* how an occurrence of a token must sit in the User-Agent to count */
#define TOKEN_WORD_START	0x01	/* the byte before is no letter or digit */
#define TOKEN_WORD_END		0x02	/* the byte after is not a letter */

typedef struct ua_token
{
	const char *text;			/* lowercase ASCII */
	unsigned char len;
	unsigned char group;		/* a ua_group */
	unsigned char flags;
	/* texts (lowercase, or NULL) that cancel an occurrence next to them */
	const char *not_preceded_by;
	const char *not_preceded_by2;
	const char *not_followed_by;
} ua_token;

#define TOK(s)		.text = (s), .len = sizeof(s) - 1
#define BOT			.group = GROUP_BOT
#define TV			.group = GROUP_TV
#define TABLET		.group = GROUP_TABLET
#define MOBILE		.group = GROUP_MOBILE
#define DESKTOP		.group = GROUP_DESKTOP

static const ua_token ua_tokens[] = {
	/*
	 * Bots, crawlers, link-preview fetchers, monitors, scripts and headless
	 * browsers.  "bot" and "bots" must end a word so that they do not meet
	 * "Botanic" and the like, and must not follow "cu": CUBOT is a brand of
	 * Android phones.  "http" does not count in "okhttp" (see the top of
	 * the file) nor in "libhttp" (a PlayStation's); "scan" not in
	 * "CamScanner", an app with its own browser.
	 */
	{TOK("bot"), BOT, .flags = TOKEN_WORD_END, .not_preceded_by = "cu"},
	{TOK("bots"), BOT, .flags = TOKEN_WORD_END, .not_preceded_by = "cu"},
	{TOK("crawl"), BOT},
	{TOK("spider"), BOT},
	{TOK("slurp"), BOT},		/* Yahoo! Slurp */
	{TOK("scrap"), BOT},		/* scrapers, Scrapy */
	{TOK("fetcher"), BOT},		/* Feedfetcher-Google, meta-externalfetcher */
	{TOK("archive"), BOT},		/* ia_archiver, archive.org_bot */
	{TOK("preview"), BOT},		/* BingPreview, SkypeUriPreview, Google Web
								 * Preview, Snap URL Preview Service */
	{TOK("headless"), BOT},		/* HeadlessChrome */
	{TOK("lighthouse"), BOT},	/* Chrome-Lighthouse, PageSpeed Insights */
	{TOK("inspect"), BOT},		/* Google-InspectionTool, CensysInspect */
	{TOK("validator"), BOT},
	{TOK("checker"), BOT},
	{TOK("linkcheck"), BOT},
	{TOK("monitor"), BOT},
	{TOK("uptime"), BOT},		/* Uptime-Kuma, Better Uptime */
	{TOK("synthetic"), BOT},	/* Datadog, New Relic synthetic checks */
	{TOK("scan"), BOT, .not_preceded_by = "cam"},
	{TOK("http"), BOT, .not_preceded_by = "ok", .not_preceded_by2 = "lib"},

	/* HTTP libraries and tools whose strings lack "http" */
	{TOK("curl"), BOT},			/* curl/, libcurl/, PycURL/ */
	{TOK("wget"), BOT},
	{TOK("python"), BOT},		/* python-requests, Python-urllib, aiohttp */
	{TOK("java/"), BOT},		/* the JDK's HttpURLConnection */
	{TOK("libwww-perl"), BOT},	/* not "libwww-FM": Lynx is a browser */
	{TOK("lwp-"), BOT},
	{TOK("lwp::"), BOT},
	{TOK("ruby"), BOT, .flags = TOKEN_WORD_START | TOKEN_WORD_END},
	{TOK("axios/"), BOT},
	{TOK("undici"), BOT},
	{TOK("faraday"), BOT},
	{TOK("powershell"), BOT},
	{TOK("postman"), BOT},
	{TOK("insomnia"), BOT},
	{TOK("phantomjs"), BOT},
	{TOK("selenium"), BOT},
	{TOK("playwright"), BOT},
	{TOK("cypress/"), BOT},
	{TOK("zgrab"), BOT},
	{TOK("nutch"), BOT},
	{TOK("nikto"), BOT},

	/* named agents without any of the words above */
	{TOK("facebookexternalhit"), BOT},
	{TOK("facebookcatalog"), BOT},
	{TOK("meta-external"), BOT},	/* meta-externalagent */
	{TOK("whatsapp"), BOT},		/* its link preview; it has no browser */
	{TOK("mastodon"), BOT},		/* every server fetches a posted link */
	{TOK("embedly"), BOT},
	{TOK("googleother"), BOT},
	{TOK("mediapartners-google"), BOT},
	{TOK("google-read-aloud"), BOT},
	{TOK("googleimageproxy"), BOT},	/* Gmail's image proxy */
	{TOK("apis-google"), BOT},
	{TOK("google favicon"), BOT},
	{TOK("chatgpt-user"), BOT},
	{TOK("claude-user"), BOT},
	{TOK("claude-web"), BOT},
	{TOK("anthropic-ai"), BOT},
	{TOK("perplexity-user"), BOT},
	{TOK("cohere-ai"), BOT},
	{TOK("pingdom"), BOT},
	{TOK("statuscake"), BOT},
	{TOK("24x7"), BOT},			/* Site24x7 */
	{TOK("datadog"), BOT},
	{TOK("newrelicpinger"), BOT},
	{TOK("zabbix"), BOT},
	{TOK("nagios"), BOT},
	{TOK("gtmetrix"), BOT},
	{TOK("pagespeed"), BOT},
	{TOK("existence discovery"), BOT},	/* Microsoft Office probing a link */
	{TOK("protocol discovery"), BOT},
	{TOK("expanse"), BOT},		/* Palo Alto Networks' scanner */
	{TOK("burpcollaborator"), BOT},
	{TOK("kube-probe"), BOT},
	{TOK("prometheus"), BOT},
	{TOK("cloudflare"), BOT},	/* CloudflareObservatory and other checks */
	{TOK("securityheaders"), BOT},

	/* page-speed and synthetic-monitoring services driving real browsers */
	{TOK("ptst/"), BOT},		/* WebPageTest, SpeedCurve */
	{TOK("page speed"), BOT},	/* Google Page Speed Insights */
	{TOK("search console"), BOT},
	{TOK("duplexweb"), BOT},	/* DuplexWeb-Google */
	{TOK("transcoder"), BOT},
	{TOK("catchpoint"), BOT},
	{TOK("gomezagent"), BOT},
	{TOK("dmbrowser"), BOT},	/* Dotcom-Monitor */
	{TOK("dejaclick"), BOT},
	{TOK("dareboost"), BOT},
	{TOK("rigor"), BOT, .flags = TOKEN_WORD_START | TOKEN_WORD_END},

	/* smart TVs, streaming sticks, consoles and headsets */
	{TOK("smart-tv"), TV},		/* Samsung (Tizen) */
	{TOK("smarttv"), TV},		/* LG (webOS: "Web0S; Linux/SmartTV") */
	{TOK("smart tv"), TV},
	{TOK("smarthub"), TV},		/* Samsung */
	{TOK("tv safari"), TV},
	{TOK("web0s"), TV},
	{TOK("webos.tv"), TV},
	{TOK("netcast"), TV},		/* LG before webOS */
	{TOK("hbbtv"), TV},
	{TOK("googletv"), TV},
	{TOK("android tv"), TV},
	{TOK("; aft"), TV},			/* Amazon Fire TV models: AFTS, AFTMM, ... */
	{TOK("crkey"), TV},			/* Chromecast */
	{TOK("bravia"), TV},
	{TOK("vizio"), TV},
	/* Opera on TVs ("OMI/4.8"), but not "XiaoMi/MiuiBrowser" */
	{TOK("omi/"), TV, .flags = TOKEN_WORD_START},
	{TOK("philipstv"), TV},
	{TOK("vidaa"), TV},
	{TOK("viera"), TV},
	{TOK("roku"), TV},
	{TOK("appletv"), TV},
	{TOK("apple tv"), TV},
	{TOK("xbox"), TV},
	{TOK("playstation"), TV},	/* also the PS Vita, whose browser is Silk */
	{TOK("nintendo"), TV},
	{TOK("oculusbrowser"), TV},	/* Meta Quest, which says "X11" */

	/*
	 * Tablets by name.  "Tablet PC" is a component Windows 7 laptops
	 * announce, not a tablet.  SM-T, SM-P and SM-X are Samsung's tablet
	 * model prefixes.
	 */
	{TOK("ipad"), TABLET},
	{TOK("tablet"), TABLET, .not_followed_by = " pc"},	/* "RIM Tablet OS" */
	{TOK("kindle"), TABLET},
	{TOK("silk"), TABLET},		/* Amazon's browser on Fire tablets */
	{TOK("playbook"), TABLET},
	{TOK("sm-t"), TABLET, .flags = TOKEN_WORD_START},
	{TOK("sm-p"), TABLET, .flags = TOKEN_WORD_START},
	{TOK("sm-x"), TABLET, .flags = TOKEN_WORD_START},
	{TOK("lenovo tb-"), TABLET},
	{TOK("lenovo yt-"), TABLET},
	{TOK("nexus 7"), TABLET},
	{TOK("nexus 9"), TABLET},
	{TOK("nexus 10"), TABLET},

	/* phones, and phone-like devices */
	{TOK("mobi"), MOBILE},
	{TOK("iphone"), MOBILE},
	{TOK("ipod"), MOBILE},
	{TOK("android"), MOBILE},
	{TOK("windows phone"), MOBILE},
	{TOK("opera mini"), MOBILE},
	{TOK("blackberry"), MOBILE},
	{TOK("bb10"), MOBILE},
	{TOK("webos"), MOBILE},		/* Palm and HP phones; TVs matched before */
	{TOK("symbian"), MOBILE},
	{TOK("symbos"), MOBILE},
	{TOK("series40"), MOBILE},
	{TOK("series60"), MOBILE},
	{TOK("j2me"), MOBILE},
	{TOK("midp"), MOBILE},
	{TOK("kaios"), MOBILE},

	/* desktop systems */
	{TOK("windows nt"), DESKTOP},
	{TOK("(windows"), DESKTOP},	/* "(Windows; U; ...)" of old browsers */
	{TOK("windows 95"), DESKTOP},
	{TOK("windows 98"), DESKTOP},
	{TOK("windows 2000"), DESKTOP},
	{TOK("windows xp"), DESKTOP},
	{TOK("win9x"), DESKTOP},
	{TOK("win 9x"), DESKTOP},
	{TOK("win95"), DESKTOP},
	{TOK("win98"), DESKTOP},
	{TOK("macintosh"), DESKTOP},
	{TOK("mac os x"), DESKTOP},
	{TOK("x11"), DESKTOP, .flags = TOKEN_WORD_START},
	/* ChromeOS ("X11; CrOS x86_64"), but not "Microsoft" */
	{TOK("cros"), DESKTOP, .flags = TOKEN_WORD_START | TOKEN_WORD_END},
	{TOK("linux x86_64"), DESKTOP},
	{TOK("linux i686"), DESKTOP},
	{TOK("freebsd"), DESKTOP},
	{TOK("openbsd"), DESKTOP},
	{TOK("netbsd"), DESKTOP},

	/* the words rule 3 combines */
	{TOK("android"), .group = PROBE_ANDROID},
	{TOK("mozilla/"), .group = PROBE_MOZILLA},
	{TOK("mobi"), .group = PROBE_MOBI},
	{TOK("macintosh"), .group = PROBE_MACINTOSH},
	{TOK("mobile/"), .group = PROBE_MOBILE_SLASH},
};

#define NTOKENS(a)	(sizeof(a) / sizeof((a)[0]))

/* token numbers fit the scan's uint8_t links, with 255 for "none" */
#define NO_TOKEN	255
_Static_assert(NTOKENS(ua_tokens) < NO_TOKEN, "too many User-Agent tokens");

static const char *const device_names[] = {
	[DEVICE_DESKTOP] = "desktop",
	[DEVICE_MOBILE] = "mobile",
	[DEVICE_TABLET] = "tablet",
	[DEVICE_BOT] = "bot",
	[DEVICE_OTHER] = "other",
};

/* is_alnum tells whether c is an ASCII letter or digit */
static inline int
is_alnum(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

/*
 * ci_equal tells whether the n bytes at s equal the lowercase ASCII text t,
 * ignoring the case of s.
 */
static bool
ci_equal(const unsigned char *s, const char *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (to_lower(s[i]) != (unsigned char) t[i])
			return false;
	return true;
}

/*
 * occurrence_counts tells whether token t, found at offset at of the len
 * bytes of u, meets its conditions on its neighbours.
 */
static bool
occurrence_counts(const unsigned char *u, size_t len, size_t at,
				  const ua_token *t)
{
	size_t		end = at + t->len;
	const char *const before[2] = {t->not_preceded_by, t->not_preceded_by2};

	if ((t->flags & TOKEN_WORD_START) && at > 0 && is_alnum(u[at - 1]))
		return false;
	if ((t->flags & TOKEN_WORD_END) && end < len && is_alpha(u[end]))
		return false;
	for (int k = 0; k < 2; k++)
	{
		size_t		n = before[k] ? strlen(before[k]) : 0;

		if (n > 0 && at >= n && ci_equal(u + at - n, before[k], n))
			return false;
	}
	if (t->not_followed_by)
	{
		size_t		n = strlen(t->not_followed_by);

		if (len - end >= n && ci_equal(u + end, t->not_followed_by, n))
			return false;
	}
	return true;
}

/*
 * Buckets of the scan: a token goes in the bucket of its first two bytes
 * (every token has at least three).  256 buckets for the 166 tokens leave
 * most buckets empty or with one or two tokens.
 */
#define PAIR_BUCKETS	256

/* pair_bucket is the bucket of two lowercase bytes */
static inline unsigned
pair_bucket(unsigned char a, unsigned char b)
{
	return (a * 31u + b) % PAIR_BUCKETS;
}

/*
 * ua_groups_found returns the set of groups (GROUP_BIT) whose tokens occur
 * in the len bytes of u, ignoring case; once a bot token is found the rest
 * does not matter, and the set is returned at once.
 *
 * One pass over u: the tokens are chained in buckets by their first two
 * bytes, so each offset of u is compared only with the few tokens that may
 * start there, and only with those of groups not found yet.  An offset
 * costs at most the total length of one bucket's tokens (the largest holds
 * the ten Windows names), so the scan is linear in len whatever u holds.
 * The chains are built on each call from the constant table, which costs
 * about as much as scanning a browser's string and keeps the file free of
 * mutable state.
 */
static unsigned
ua_groups_found(const unsigned char *u, size_t len)
{
	uint8_t		head[PAIR_BUCKETS];
	uint8_t		next[NTOKENS(ua_tokens)];
	unsigned	found = 0;

	memset(head, NO_TOKEN, sizeof(head));
	for (size_t k = NTOKENS(ua_tokens); k-- > 0;)
	{
		unsigned	b = pair_bucket((unsigned char) ua_tokens[k].text[0],
									(unsigned char) ua_tokens[k].text[1]);

		next[k] = head[b];
		head[b] = (uint8_t) k;
	}

	for (size_t i = 0; i + 1 < len; i++)
	{
		unsigned	b = pair_bucket(to_lower(u[i]), to_lower(u[i + 1]));

		for (uint8_t k = head[b]; k != NO_TOKEN; k = next[k])
		{
			const ua_token *t = &ua_tokens[k];

			if (found & GROUP_BIT(t->group))
				continue;
			if (t->len > len - i ||
				!ci_equal(u + i, t->text, t->len) ||
				!occurrence_counts(u, len, i, t))
				continue;
			found |= GROUP_BIT(t->group);
			if (t->group == GROUP_BOT)
				return found;
		}
	}
	return found;
}

/*
 * visit_device_class applies the rules at the top of this file, in their
 * order, to the groups the User-Agent holds.
 */
visit_device
visit_device_class(const char *ua, size_t len)
{
	unsigned	found = ua_groups_found((const unsigned char *) ua, len);

#define HAS(g)	((found & GROUP_BIT(g)) != 0)
	if (HAS(GROUP_BOT))
		return DEVICE_BOT;
	if (HAS(GROUP_TV))
		return DEVICE_OTHER;
	if (HAS(GROUP_TABLET) ||
		(HAS(PROBE_ANDROID) && HAS(PROBE_MOZILLA) && !HAS(PROBE_MOBI)) ||
		(HAS(PROBE_MACINTOSH) && HAS(PROBE_MOBILE_SLASH)))
		return DEVICE_TABLET;
	if (HAS(GROUP_MOBILE))
		return DEVICE_MOBILE;
	if (HAS(GROUP_DESKTOP))
		return DEVICE_DESKTOP;
	return DEVICE_OTHER;
#undef HAS
}

/* visit_device_name: see visitdims.h */
const char *
visit_device_name(visit_device d)
{
	if ((unsigned) d > DEVICE_OTHER)
		return device_names[DEVICE_OTHER];
	return device_names[d];
}

/* is_scheme_char tells whether c may follow a scheme's first letter */
static inline int
is_scheme_char(unsigned char c)
{
	return is_alnum(c) || c == '+' || c == '-' || c == '.';
}

/* is_name_char tells whether c may appear in a host name we keep */
static inline int
is_name_char(unsigned char c)
{
	return is_alnum(c) || c == '-' || c == '.' || c == '_';
}

/* set_value writes the NUL-terminated text s to out and its length */
static void
set_value(char *out, size_t *out_len, const char *s)
{
	size_t		n = strlen(s);

	memcpy(out, s, n + 1);
	*out_len = n;
}

/*
 * ipv6_literal_ok tells whether the n bytes at s (between the brackets) are
 * an IPv6 address as inet_pton reads one (RFC 4291 section 2.2 text forms).
 */
static bool
ipv6_literal_ok(const unsigned char *s, size_t n)
{
	char		addr[INET6_ADDRSTRLEN];
	unsigned char bin[16];

	if (n == 0 || n >= sizeof(addr))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_hex(s[i]) && s[i] != ':' && s[i] != '.')
			return false;
	memcpy(addr, s, n);
	addr[n] = '\0';
	return inet_pton(AF_INET6, addr, bin) == 1;
}

/* port_ok tells whether the n bytes at s are empty or a port number */
static bool
port_ok(const unsigned char *s, size_t n)
{
	unsigned long port = 0;

	for (size_t i = 0; i < n; i++)
	{
		if (!is_digit(s[i]))
			return false;
		port = port * 10 + (unsigned long) (s[i] - '0');
		if (port > VISIT_MAX_PORT)
			return false;
	}
	return true;
}

/*
 * name_ok tells whether the n bytes at s, a host name without its final
 * dot, are name characters in non-empty labels.
 */
static bool
name_ok(const unsigned char *s, size_t n)
{
	if (n == 0 || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
	{
		if (!is_name_char(s[i]))
			return false;
		if (s[i] == '.' && s[i + 1] == '.')
			return false;		/* i + 1 < n: s[n - 1] is not a dot */
	}
	return true;
}

/*
 * visit_referrer_host applies the rules at the top of this file; see
 * visitdims.h for the contract.
 */
visit_referrer_status
visit_referrer_host(const char *ref, size_t len, char out[VISIT_HOST_BUFSIZE],
					size_t *out_len)
{
	const unsigned char *u = (const unsigned char *) ref;
	size_t		i;
	size_t		start;
	size_t		end;
	size_t		host;
	size_t		host_end;
	size_t		name_len;

	if (len == 0)
	{
		set_value(out, out_len, VISIT_REFERRER_DIRECT_VALUE);
		return VISIT_REFERRER_DIRECT;
	}

	/* scheme "://" */
	if (!is_alpha(u[0]))
		goto invalid;
	for (i = 1; i < len && is_scheme_char(u[i]); i++)
		;
	if (len - i < 3 || memcmp(u + i, "://", 3) != 0)
		goto invalid;
	start = i + 3;

	/* the authority, and the userinfo up to its last '@' */
	end = start;
	while (end < len && u[end] != '/' && u[end] != '?' && u[end] != '#')
		end++;
	host = start;
	for (i = start; i < end; i++)
		if (u[i] == '@')
			host = i + 1;

	if (host < end && u[host] == '[')
	{
		size_t		close = host + 1;

		while (close < end && u[close] != ']')
			close++;
		if (close == end || !ipv6_literal_ok(u + host + 1, close - host - 1))
			goto invalid;
		host_end = close + 1;
		name_len = host_end - host;
	}
	else
	{
		host_end = host;
		while (host_end < end && u[host_end] != ':')
			host_end++;
		name_len = host_end - host;
		if (name_len > 0 && u[host_end - 1] == '.')
			name_len--;			/* the root's empty label */
		if (!name_ok(u + host, name_len))
			goto invalid;
	}
	if (name_len > VISIT_HOST_MAX_LEN)
		goto invalid;

	/* nothing but ":" and a port may follow the host */
	if (host_end < end &&
		(u[host_end] != ':' || !port_ok(u + host_end + 1, end - host_end - 1)))
		goto invalid;

	for (i = 0; i < name_len; i++)
		out[i] = (char) to_lower(u[host + i]);
	out[name_len] = '\0';
	*out_len = name_len;
	return VISIT_REFERRER_HOST;

invalid:
	set_value(out, out_len, VISIT_REFERRER_OTHER_VALUE);
	return VISIT_REFERRER_INVALID;
}

/* visit_country_code: see visitdims.h */
bool
visit_country_code(const char *in, size_t len, char out[3])
{
	const unsigned char *u = (const unsigned char *) in;

	out[0] = '\0';
	if (len != 2 || !is_alpha(u[0]) || !is_alpha(u[1]))
		return false;
	for (int i = 0; i < 2; i++)
		out[i] = (char) (u[i] & ~0x20);	/* ASCII letters: clear the case bit */
	out[2] = '\0';
	return true;
}
