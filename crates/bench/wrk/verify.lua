-- wrk script for the verifier benchmark: GETs the URL with a session-token cookie, going
-- round-robin over a file of tokens (one a line, as `bench-seed --target tokens` writes them).
-- A file longer than the verifier's cache makes every request a fresh token (a cache miss);
-- a short one repeats each token, as a browser resends its cookie. Both verifiers run in
-- required mode (401 without a valid token), so wrk's "Non-2xx" count shows any token that
-- did not verify; no `response` callback, which would slow wrk down.
--
--   wrk -t1 -c32 -d10s --latency -s crates/bench/wrk/verify.lua \
--       http://127.0.0.1:7300/v1/verify -- __Host-tessera-token tokens.txt

local requests, n, pos = {}, 0, 0

local threads = 0
function setup(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
end

function init(args)
  local name, file = args[1], args[2]
  assert(name and file, "arguments: cookie-name token-file")
  for line in io.lines(file) do
    if #line > 0 then
      n = n + 1
      requests[n] = wrk.format("GET", nil, { ["Cookie"] = name .. "=" .. line })
    end
  end
  assert(n > 0, "no tokens in " .. file)
  pos = ((thread_index or 0) * 7919) % n
end

function request()
  pos = pos % n + 1
  return requests[pos]
end
