-- wrk script for scripts/bench.ts: POST /formulas with varying bodies, status
-- counts and a JSON summary line.
--
--   wrk -t1 -c16 -d6s -s scripts/bench/formulas.lua http://127.0.0.1:PORT -- unique TAG [CLIENT]
--   wrk -t1 -c16 -d6s -s scripts/bench/formulas.lua http://127.0.0.1:PORT -- fixed FILE [replay]
--
-- unique: every request is a new material make-up. The first material's name
--   carries TAG, the thread number and a per-thread counter, so no two requests
--   of a run (or of two runs with different TAGs) share a fingerprint. With
--   CLIENT, every request carries `X-Client-Id: CLIENT` (webhook events).
-- fixed:  FILE holds one request per line, `KEY<TAB>BODY` (KEY empty for none);
--   requests are formatted once in init() and sent round-robin, each thread
--   starting at its own offset. `replay` also counts responses carrying
--   `Idempotent-Replayed: true`.
--
-- BENCH_SPREAD_PORTS=P1,P2,… (environment): thread i sends to 127.0.0.1:P_i
--   (run wrk with -t equal to the number of ports), so one wrk spreads its
--   connections evenly over several instances of the service.
--
-- done() prints one line `BENCH_JSON {...}`: completed responses, duration and
-- latency in microseconds, socket errors, per-status counts, requests generated.

local threads = {}
local spread = nil

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("tid", #threads)
  local ports = os.getenv("BENCH_SPREAD_PORTS")
  if ports ~= nil and ports ~= "" then
    if spread == nil then
      spread = {}
      for port in ports:gmatch("%d+") do spread[#spread + 1] = wrk.lookup("127.0.0.1", port)[1] end
    end
    thread.addr = spread[(#threads - 1) % #spread + 1]
  end
end

local mode, tag, fixed, check_replay
local unique_headers = { ["Content-Type"] = "application/json" }
local unique_body = '{"name":"Bench %d","materials":['
  .. '{"name":"Bergamot Oil %s-%d-%d","concentration":15.5},'
  .. '{"name":"Lavender Absolute","concentration":10.0},'
  .. '{"name":"Sandalwood","concentration":5.2}]}'

counts = {}
generated = 0
replayed = 0
local index = 0

function init(args)
  mode = args[1]
  if mode == "unique" then
    tag = args[2]
    if args[3] ~= nil then unique_headers["X-Client-Id"] = args[3] end
  elseif mode == "fixed" then
    fixed = {}
    for line in io.lines(args[2]) do
      local key, body = line:match("^([^\t]*)\t(.*)$")
      local headers = { ["Content-Type"] = "application/json" }
      if key ~= "" then headers["Idempotency-Key"] = key end
      fixed[#fixed + 1] = wrk.format("POST", "/formulas", headers, body)
    end
    check_replay = args[3] == "replay"
    index = tid
  else
    error("mode must be unique or fixed, got " .. tostring(mode))
  end
end

function request()
  generated = generated + 1
  if mode == "unique" then
    return wrk.format("POST", "/formulas", unique_headers, string.format(unique_body, generated, tag, tid, generated))
  end
  index = index % #fixed + 1
  return fixed[index]
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if check_replay then
    local value = headers["Idempotent-Replayed"] or headers["idempotent-replayed"]
    if value == "true" then replayed = replayed + 1 end
  end
end

function done(summary, latency, requests)
  local total_counts, total_generated, total_replayed = {}, 0, 0
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts")) do
      total_counts[status] = (total_counts[status] or 0) + n
    end
    total_generated = total_generated + thread:get("generated")
    total_replayed = total_replayed + thread:get("replayed")
  end
  local statuses = {}
  for status, n in pairs(total_counts) do
    statuses[#statuses + 1] = string.format('"%d":%d', status, n)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"durationUs":%d,"generated":%d,"replayed":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},"statuses":{%s},'
      .. '"latencyUs":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, total_generated, total_replayed,
    e.connect, e.read, e.write, e.timeout, table.concat(statuses, ","),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean
  ))
end
