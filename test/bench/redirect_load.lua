-- test/bench/redirect_load.lua: the requests of test/bench/redirect.sh, for wrk.
--
--   REDIRECT_RATE=R wrk -t T -c C -d D -s redirect_load.lua URL -- T LINKS FIRST_CODE
--
-- Each request is GET /<code> with a Referer, a User-Agent, a country
-- header and an X-Forwarded-For (a client address), as a browser behind a
-- proxy would send them.  The code's rank is drawn by Zipf's law (s =
-- 1.001) over LINKS links and scattered over the codes by a fixed
-- permutation, as test/bench/peak.sh draws them with pgbench.
--
-- R > 0 paces the run: each thread has a schedule of R / T requests
-- a second, and delay() (called by wrk before every request of every
-- connection) hands out the next slot of it, returning the milliseconds
-- until that slot.  A connection that asks when its slot is already past
-- (all C connections were busy) sends at once; such late slots and their
-- lag are counted, so that the report can show how far wrk's latency
-- (measured from the send, not from the slot) understates latency from the
-- schedule.  R = 0 (or unset): no pacing (closed loop), and no delay()
-- at all, which wrk would call, through a timer, before every request.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")

local function now_ms()
	ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
	return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

-- the permutation's seed, the same in every thread
local PERMUTATION_SEED = 12
-- Zipf's exponent, as in peak.sh and longtail.sh
local ZIPF_S = 1.001
-- a slot this late (ms) counts as late: wrk's timers have 1 ms resolution
local LATE_MS = 1

local referrers = {
	"", "", "", "https://t.co/abc", "https://www.google.com/", "https://news.ycombinator.com/item?id=1",
	"https://www.reddit.com/r/programming/", "https://www.facebook.com/", "https://mail.example.org/inbox",
	"https://www.linkedin.com/feed/", "https://duckduckgo.com/",
}
local agents = {
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36",
	"Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
}
local countries = { "US", "US", "US", "DE", "DE", "GB", "FR", "IN", "BR", "JP", "CA", "NL", "XX" }

-- requests a second, all threads together (read here, at the top level,
-- since wrk decides whether the script has a delay() before init() runs)
local rate = tonumber(os.getenv("REDIRECT_RATE") or "0")
local links, first_code
local perm, cdf
local interval, next_slot
-- per thread, global so that done() can read them with thread:get()
sent, late, lag_max, lag_sum = 0, 0, 0, 0

-- setup runs in the main Lua state once per thread: number the threads
local thread_no = 0
local threads = {}
function setup(thread)
	thread_no = thread_no + 1
	thread:set("thread_id", thread_no)
	table.insert(threads, thread)
end

function init(args)
	local nthreads = tonumber(args[1] or "1")
	links = tonumber(args[2] or "100000")
	first_code = tonumber(args[3] or "1000000")
	if rate > 0 then
		interval = 1000 / (rate / nthreads)
	end
	-- the permutation of ranks to codes: the same in every thread
	math.randomseed(PERMUTATION_SEED)
	perm = {}
	for i = 0, links - 1 do perm[i] = i end
	for i = links - 1, 1, -1 do
		local j = math.random(0, i)
		perm[i], perm[j] = perm[j], perm[i]
	end
	-- Zipf's cumulative weights over ranks 1 .. links
	cdf = {}
	local total = 0
	for k = 1, links do
		total = total + 1 / k ^ ZIPF_S
		cdf[k] = total
	end
	for k = 1, links do cdf[k] = cdf[k] / total end
	-- each thread draws its own sequence
	math.randomseed(PERMUTATION_SEED * 1000 + thread_id)
end

-- rank draws a rank from 0 to links - 1 by Zipf's law (binary search)
local function rank()
	local u = math.random()
	local lo, hi = 1, links
	while lo < hi do
		local mid = math.floor((lo + hi) / 2)
		if cdf[mid] < u then lo = mid + 1 else hi = mid end
	end
	return lo - 1
end

if rate > 0 then
	function delay()
		local now = now_ms()
		if not next_slot then next_slot = now end
		local slot = next_slot
		next_slot = next_slot + interval
		sent = sent + 1
		local d = slot - now
		if d < -LATE_MS then
			late = late + 1
			lag_sum = lag_sum - d
			if -d > lag_max then lag_max = -d end
		end
		if d <= 0 then return 0 end
		return math.floor(d + 0.5)
	end
end

function request()
	local code = first_code + 1 + perm[rank()]
	local h = {
		["User-Agent"] = agents[math.random(#agents)],
		["CF-IPCountry"] = countries[math.random(#countries)],
		-- 20,000 client addresses (documentation and private ranges)
		["X-Forwarded-For"] = "10." .. math.random(0, 79) .. "." .. math.random(0, 249) .. ".1",
	}
	local r = referrers[math.random(#referrers)]
	if r ~= "" then h["Referer"] = r end
	return wrk.format("GET", "/" .. code, h)
end

-- done prints one line of figures for redirect.sh (latencies in µs):
-- RESULT requests seconds rate p50 p75 p90 p95 p99 p99.9 p99.99 max mean
--        errors non_2xx_3xx sent late lag_max_ms lag_avg_ms
function done(summary, latency, requests)
	local t_sent, t_late, t_lagmax, t_lagsum = 0, 0, 0, 0
	for _, t in ipairs(threads) do
		t_sent = t_sent + (t:get("sent") or 0)
		t_late = t_late + (t:get("late") or 0)
		t_lagsum = t_lagsum + (t:get("lag_sum") or 0)
		local m = t:get("lag_max") or 0
		if m > t_lagmax then t_lagmax = m end
	end
	local e = summary.errors
	local secs = summary.duration / 1e6
	local out = { "RESULT", summary.requests, string.format("%.3f", secs), string.format("%.1f", summary.requests / secs) }
	for _, p in ipairs({ 50, 75, 90, 95, 99, 99.9, 99.99 }) do
		table.insert(out, latency:percentile(p))
	end
	table.insert(out, latency.max)
	table.insert(out, string.format("%.1f", latency.mean))
	table.insert(out, e.connect + e.read + e.write + e.timeout)
	table.insert(out, e.status)
	table.insert(out, t_sent)
	table.insert(out, t_late)
	table.insert(out, string.format("%.3f", t_lagmax))
	table.insert(out, string.format("%.3f", t_late > 0 and t_lagsum / t_late or 0))
	io.write(table.concat(out, " ") .. "\n")
end
