-- wrk script: POST one mlp-s sample (1 x 256 FP32) as a KServe v2 JSON infer
-- request, reply in JSON. Used by bench/wrk/run.sh; alone:
--   wrk -t2 -c64 -d5s --latency -s bench/wrk/infer.lua http://127.0.0.1:8000
-- FERRY_WRK_MODEL names another model (default mlp-s).
local model = os.getenv("FERRY_WRK_MODEL") or "mlp-s"
local vals = {}
for i = 1, 256 do
  -- deterministic values in [-1, 1), four decimals, like a typical client
  vals[i] = string.format("%.4f", ((i * 37) % 200) / 100 - 1)
end
wrk.method = "POST"
wrk.path = "/v2/models/" .. model .. "/infer"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"id":"wrk","inputs":[{"name":"input","datatype":"FP32","shape":[1,256],"data":['
  .. table.concat(vals, ",") .. ']}]}'
