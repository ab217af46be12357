-- wrk script for the benches that POST (bench/telephony.sh, bench/whatsapp.sh).
--   BENCH_MODE     "sms": POST /api/v1/sms {"to", "body"} with BENCH_TOKEN,
--                  a new number for every request: "+1415" .. (BENCH_DIGIT
--                  + thread number) .. a six-digit counter, so that no
--                  destination is sent to twice;
--                  "hook": the signed webhooks of BENCH_BODIES (lines
--                  "<signature>\t<body>", from bench/telephony-bodies.mjs
--                  or bench/whatsapp-bodies.mjs), thread i of n sending
--                  lines i, i + n, ... in turn and starting over when done;
--                  the signature goes in the header BENCH_SIG_HEADER
--                  (X-Twilio-Signature), the body as BENCH_CONTENT_TYPE
--                  (application/x-www-form-urlencoded).
--   BENCH_EXPECT   the status every answer must have (202, 200).
-- Prints "post-wrk: responses N unexpected M repeated R" when done:
-- M answers had another status (the first is printed), R requests re-sent
-- a webhook body already sent in this run (its lines ran out); then per
-- thread "post-wrk: thread T requests C responses N": C requests made (the
-- first C of its lines, in hook mode), N of them answered.
-- The bodies are read from a file rather than a Lua table literal: LuaJIT
-- (wrk's Lua) refuses a function with more than 65,536 constants.
local mode = assert(os.getenv("BENCH_MODE"), "BENCH_MODE")
local expect = tonumber((assert(os.getenv("BENCH_EXPECT"), "BENCH_EXPECT")))
local threads = {}

function setup(thread)
	thread:set("tid", #threads)
	table.insert(threads, thread)
end

function init(args)
	responses = 0
	unexpected = 0
	repeated = 0
	first_bad = nil
	counter = 0
	if mode == "sms" then
		token = assert(os.getenv("BENCH_TOKEN"), "BENCH_TOKEN")
		prefix = "+1415" .. (tonumber(os.getenv("BENCH_DIGIT") or "2") + tid)
		path = wrk.path
	else
		local nthreads = tonumber((assert(os.getenv("BENCH_THREADS"), "BENCH_THREADS")))
		sigs, bodies = {}, {}
		local i = 0
		for line in io.lines((assert(os.getenv("BENCH_BODIES"), "BENCH_BODIES"))) do
			if i % nthreads == tid then
				local tab = line:find("\t", 1, true)
				table.insert(sigs, line:sub(1, tab - 1))
				table.insert(bodies, line:sub(tab + 1))
			end
			i = i + 1
		end
		assert(#bodies > 0, "no webhook bodies for thread " .. tid)
		sig_header = os.getenv("BENCH_SIG_HEADER") or "X-Twilio-Signature"
		hook_headers = { ["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or
		    "application/x-www-form-urlencoded" }
	end
end

function request()
	counter = counter + 1
	if mode == "sms" then
		return wrk.format("POST", path, { ["Authorization"] = "Bearer " .. token,
		    ["Content-Type"] = "application/json" },
		    string.format('{"to":"%s%06d","body":"Your appointment is confirmed for tomorrow at 10:00."}',
		    prefix, counter))
	end
	local i = (counter - 1) % #bodies + 1
	if counter > #bodies then
		repeated = repeated + 1
	end
	hook_headers[sig_header] = sigs[i]
	return wrk.format("POST", nil, hook_headers, bodies[i])
end

function response(status, headers, body)
	responses = responses + 1
	if status ~= expect then
		unexpected = unexpected + 1
		if first_bad == nil then
			first_bad = status .. " " .. (body or "")
		end
	end
end

function done(summary, latency, requests)
	local n, b, r, first = 0, 0, 0, nil
	for _, t in ipairs(threads) do
		n = n + t:get("responses")
		b = b + t:get("unexpected")
		r = r + t:get("repeated")
		first = first or t:get("first_bad")
	end
	io.write(string.format("post-wrk: responses %d unexpected %d repeated %d\n", n, b, r))
	if first ~= nil then
		io.write("post-wrk: first unexpected: " .. first .. "\n")
	end
	for i, t in ipairs(threads) do
		io.write(string.format("post-wrk: thread %d requests %d responses %d\n", i - 1,
		    t:get("counter"), t:get("responses")))
	end
end
