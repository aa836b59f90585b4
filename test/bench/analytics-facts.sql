-- test/bench/analytics-facts.sql: what test/bench/analytics.sh passes to
-- resolve() about a visit, one row per choice, numbered from 1 so that a
-- pgbench script can pick one with random(1, n).
--
--   bench.referrers    50 Referer headers: search engines, social sites and
--                      their link wrappers, news, mail and chat web apps,
--                      and two Android apps (android-app://), about 45 hosts
--   bench.countries    30 ISO 3166-1 alpha-2 codes, as a GeoIP lookup gives
--   bench.user_agents  10 User-Agent headers of current browsers: desktop,
--                      phones (one an in-app browser), a tablet, and
--                      Googlebot (a bot: its clicks have no visitor)
--
-- No value holds a colon followed by a letter: pgbench would take it for a
-- variable.
CREATE TABLE bench.referrers (n int PRIMARY KEY, url text NOT NULL);
CREATE TABLE bench.countries (n int PRIMARY KEY, code text NOT NULL);
CREATE TABLE bench.user_agents (n int PRIMARY KEY, agent text NOT NULL, expected_class text NOT NULL);

INSERT INTO bench.referrers (n, url) VALUES
    (1, 'https://www.google.com/'),
    (2, 'https://www.google.com/search?q=url+shortener&oq=url+short'),
    (3, 'https://www.google.de/'),
    (4, 'https://www.google.co.uk/'),
    (5, 'https://www.bing.com/search?q=short+links&form=QBLH'),
    (6, 'https://duckduckgo.com/'),
    (7, 'https://search.yahoo.com/search?p=link+tracking'),
    (8, 'https://yandex.ru/search/?text=shortlink&lr=213'),
    (9, 'https://www.baidu.com/link?url=Xk2Lm9aQ7&wd=&eqid=9f8e7d'),
    (10, 'https://t.co/4fXk2LmN9a'),
    (11, 'https://twitter.com/'),
    (12, 'https://x.com/home'),
    (13, 'https://www.facebook.com/'),
    (14, 'https://l.facebook.com/l.php?u=https%3A%2F%2Fexample.com%2F&h=AT0xyz'),
    (15, 'https://m.facebook.com/'),
    (16, 'https://lm.facebook.com/l.php?u=https%3A%2F%2Fexample.com%2F'),
    (17, 'https://www.instagram.com/'),
    (18, 'https://l.instagram.com/?u=https%3A%2F%2Fexample.com%2F&e=ATN'),
    (19, 'https://www.linkedin.com/feed/'),
    (20, 'https://lnkd.in/dXyZ123q'),
    (21, 'https://www.reddit.com/r/programming/comments/1abcde/a_post_title/'),
    (22, 'https://old.reddit.com/r/PostgreSQL/'),
    (23, 'https://out.reddit.com/t3_1abcde?url=https%3A%2F%2Fexample.com'),
    (24, 'https://news.ycombinator.com/item?id=38123456'),
    (25, 'https://news.ycombinator.com/'),
    (26, 'https://lobste.rs/s/abcd12/a_story_title'),
    (27, 'https://www.youtube.com/watch?v=dQw4w9WgXcQ'),
    (28, 'https://m.youtube.com/'),
    (29, 'https://www.tiktok.com/@someone/video/7301234567890123456'),
    (30, 'https://www.pinterest.com/pin/123456789012345678/'),
    (31, 'https://github.com/postgres/postgres/pull/123'),
    (32, 'https://stackoverflow.com/questions/1234567/how-to-shorten-urls'),
    (33, 'https://medium.com/@author/some-article-1a2b3c4d5e6f'),
    (34, 'https://dev.to/someone/a-post-about-links-1k2j'),
    (35, 'https://substack.com/inbox'),
    (36, 'https://mail.google.com/mail/u/0/'),
    (37, 'https://outlook.live.com/mail/0/inbox'),
    (38, 'https://web.whatsapp.com/'),
    (39, 'https://web.telegram.org/k/'),
    (40, 'https://discord.com/channels/123456789/987654321'),
    (41, 'https://app.slack.com/client/T01234567/C07654321'),
    (42, 'https://teams.microsoft.com/v2/'),
    (43, 'https://www.nytimes.com/2024/05/01/technology/short-links.html'),
    (44, 'https://www.theguardian.com/technology/2024/may/01/short-links'),
    (45, 'https://www.bbc.co.uk/news/technology-68912345'),
    (46, 'https://www.spiegel.de/netzwelt/web/kurzlinks-a-1234abcd.html'),
    (47, 'https://en.wikipedia.org/wiki/URL_shortening'),
    (48, 'https://www.producthunt.com/posts/some-launch'),
    (49, 'android-app://com.google.android.gm/'),
    (50, 'android-app://com.slack/');

INSERT INTO bench.countries (n, code)
SELECT row_number() OVER (), c
FROM unnest('{US,DE,GB,FR,IN,BR,JP,CA,AU,ES,IT,NL,PL,SE,MX,KR,RU,TR,ID,CN,AR,CH,AT,BE,NG,ZA,EG,VN,PH,UA}'::text[]) c;

INSERT INTO bench.user_agents (n, agent, expected_class) VALUES
    (1, 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36', 'desktop'),
    (2, 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36', 'desktop'),
    (3, 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15', 'desktop'),
    (4, 'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0', 'desktop'),
    (5, 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80', 'desktop'),
    (6, 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1', 'mobile'),
    (7, 'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36', 'mobile'),
    (8, 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/21E236 [FBAN/FBIOS;FBAV/460.0.0.40.104;FBBV/581234567;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.4;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]', 'mobile'),
    (9, 'Mozilla/5.0 (iPad; CPU OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1', 'tablet'),
    (10, 'Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.91 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)', 'bot');
