-- wrk script for the Kask-compatible API: `GET` or `POST` on `/sessions/v1/bench:<i>`, going
-- round-robin over <keys> keys, with the API key (TESSERA_API_KEY) in `Authorization`.
--
--   wrk -t1 -c32 -d10s --latency -s crates/bench/wrk/kask.lua http://127.0.0.1:7300 -- post 1000
--   wrk ... -- get 1000
--
-- `post` writes a 100-byte value; run it before `get` so that every key read exists.

local op, nkeys, i, api_key

function init(args)
  op = args[1]
  nkeys = tonumber(args[2] or "1000")
  assert(op == "get" or op == "post", "operation must be get or post")
  api_key = os.getenv("TESSERA_API_KEY")
  assert(api_key, "TESSERA_API_KEY is not set")
  i = math.random(nkeys)
end

local value = string.rep("v", 100)

function request()
  i = (i % nkeys) + 1
  local path = "/sessions/v1/bench:" .. i
  local headers = { ["Authorization"] = "Bearer " .. api_key }
  if op == "post" then
    headers["Content-Type"] = "application/octet-stream"
    return wrk.format("POST", path, headers, value)
  end
  return wrk.format("GET", path, headers)
end
