-- wrk script: POST one mlp-s sample with Triton's binary tensor extension:
-- a JSON header (its length in Inference-Header-Content-Length), then the
-- 1024 raw bytes of the 1 x 256 FP32 input; the output comes back binary too.
--   wrk -t2 -c64 -d5s --latency -s bench/wrk/infer_binary.lua http://127.0.0.1:8000
local model = os.getenv("FERRY_WRK_MODEL") or "mlp-s"
-- little-endian float32 bytes of 0.5, -0.5, 0.25, 1.0 (LuaJIT has no string.pack)
local f32 = { "\0\0\0\63", "\0\0\0\191", "\0\0\128\62", "\0\0\128\63" }
local raw = {}
for i = 1, 256 do raw[i] = f32[(i % 4) + 1] end
local header = '{"id":"wrk","inputs":[{"name":"input","datatype":"FP32","shape":[1,256],'
  .. '"parameters":{"binary_data_size":1024}}],'
  .. '"outputs":[{"name":"output","parameters":{"binary_data":true}}]}'
wrk.method = "POST"
wrk.path = "/v2/models/" .. model .. "/infer"
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.headers["Inference-Header-Content-Length"] = tostring(#header)
wrk.body = header .. table.concat(raw)
