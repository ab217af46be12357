-- wrk script for bench/concierge.sh: an authenticated concierge request.
--   BENCH_TOKEN   staff access token (Authorization: Bearer ...)
--   BENCH_METHOD  GET (default) or POST
--   BENCH_BODY    the JSON body of a POST
-- Counts the responses that were not 2xx in every thread and prints
-- "concierge-wrk: responses N non-2xx M" when done; the caller fails on M > 0.
wrk.method = os.getenv("BENCH_METHOD") or "GET"
wrk.headers["Authorization"] = "Bearer " .. assert(os.getenv("BENCH_TOKEN"), "BENCH_TOKEN")
if wrk.method == "POST" then
	wrk.body = assert(os.getenv("BENCH_BODY"), "BENCH_BODY")
	wrk.headers["Content-Type"] = "application/json"
end

local threads = {}

function setup(thread)
	table.insert(threads, thread)
end

function init(args)
	responses = 0
	bad = 0
	first_bad = nil
end

function response(status, headers, body)
	responses = responses + 1
	if status < 200 or status > 299 then
		bad = bad + 1
		if first_bad == nil then
			first_bad = status .. " " .. (body or "")
		end
	end
end

function done(summary, latency, requests)
	local n, b, first = 0, 0, nil
	for _, t in ipairs(threads) do
		n = n + t:get("responses")
		b = b + t:get("bad")
		first = first or t:get("first_bad")
	end
	io.write(string.format("concierge-wrk: responses %d non-2xx %d\n", n, b))
	if first ~= nil then
		io.write("concierge-wrk: first non-2xx: " .. first .. "\n")
	end
end
