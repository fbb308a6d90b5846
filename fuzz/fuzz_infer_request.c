/*
 * fuzz_infer_request.c - libFuzzer harness: the body of a KServe v2 infer
 * request through the server's reader (kserve_submit: the one-pass JSON
 * reader in kserve_parse.c, every check of the protocol, Triton's binary
 * tensor data), then, when the request is valid, through a real batcher
 * and engine and back out through the response writer.
 *
 * The model (built in memory): inputs x [N,4] FP32 and z [N,2] FP32,
 * outputs h = Gemm(x) [N,2] and y = h + z [N,2]; max batch 64, so that
 * multi-input, output selection and batch checks are all reachable.
 *
 * Input format: the request body as it would arrive; when it starts with
 * "#<digits>\n", the digits are its Inference-Header-Content-Length and
 * the body is what follows (JSON, then binary tensor data).
 *
 * The HTTP connection is replaced by the two libmicrohttpd calls the reader
 * makes on it (defined here, so the library's calls land here): suspend
 * does nothing; resume, which the batcher's callback calls when the
 * request is done, wakes the harness.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "graph/onnx_builder.h"
#include "server/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static ferry_server *server;
static srv_model *model;
static srv_worker worker;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t resumed_cv = PTHREAD_COND_INITIALIZER;
static int resumed;

void MHD_suspend_connection(struct MHD_Connection *connection)
{
    (void)connection;
}

void MHD_resume_connection(struct MHD_Connection *connection)
{
    (void)connection;
    pthread_mutex_lock(&lock);
    resumed = 1;
    pthread_cond_signal(&resumed_cv);
    pthread_mutex_unlock(&lock);
}

static void die(const char *what)
{
    fprintf(stderr, "fuzz_infer_request: %s: %s\n", what, ferry_last_error());
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("FERRY_CPU_THREADS", "1", 1);
    ob *b = ob_new(13);
    int64_t xd[2] = {-1, 4}, zd[2] = {-1, 2}, wd[2] = {2, 4}, bd[1] = {2}, yd[2] = {-1, 2};
    float w[8] = {0.5f, -1, 0.25f, 2, -0.5f, 1, 0.75f, -2}, bias[2] = {0.1f, -0.1f};
    ob_input(b, "x", 2, xd);
    ob_input(b, "z", 2, zd);
    ob_output(b, "h", 2, yd);
    ob_output(b, "y", 2, yd);
    ob_init_f32(b, "w", 2, wd, w);
    ob_init_f32(b, "b", 1, bd, bias);
    Onnx__NodeProto *n = ob_node(b, "Gemm", "fc", "x,w,b", "h");
    ob_attr_i(b, n, "transB", 1);
    ob_node(b, "Add", "add", "h,z", "y");
    size_t len;
    uint8_t *buf = ob_pack(b, &len);
    ferry_model *m;
    ferry_engine *e;
    ferry_batcher *bt;
    if (ferry_model_load_buffer(buf, len, NULL, &m))
        die("model");
    ob_free(b);
    ferry_engine_config ec;
    ferry_engine_config_init(&ec);
    ec.max_batch = 64;
    if (ferry_engine_create(m, &ec, &e))
        die("engine");
    ferry_batcher_config bc;
    ferry_batcher_config_init(&bc);
    bc.max_batch = 64;
    bc.max_delay_us = 0;
    if (ferry_batcher_create(e, &bc, &bt))
        die("batcher");
    if (ferry_server_create(NULL, &server) || ferry_server_add_model(server, "m", NULL, m, e, bt))
        die("server");
    model = server->models[0];
    worker.srv = server;
    worker.wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    worker.ep = -1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    long long header_len = -1;
    if (size > 1 && data[0] == '#') {
        size_t i = 1;
        long long v = 0;
        while (i < size && i < 12 && data[i] >= '0' && data[i] <= '9')
            v = v * 10 + (data[i++] - '0');
        if (i > 1 && i < size && data[i] == '\n') {
            header_len = v;
            data += i + 1;
            size -= i + 1;
        }
    }
    srv_request r;
    memset(&r, 0, sizeof r);
    r.srv = server;
    r.worker = &worker;
    r.conn = (struct MHD_Connection *)&r; /* never dereferenced: see the top */
    r.route = ROUTE_INFER;
    r.model = model;
    r.header_len = header_len;
    /* exactly the body's bytes, so that ASan sees any read past them */
    r.body = malloc(size ? size : 1);
    if (!r.body)
        return 0;
    memcpy(r.body, data, size);
    r.len = r.cap = size;
    resumed = 0;
    if (kserve_submit(&r)) {
        pthread_mutex_lock(&lock);
        while (!resumed)
            pthread_cond_wait(&resumed_cv, &lock);
        pthread_mutex_unlock(&lock);
        uint64_t v;
        if (read(worker.wake, &v, sizeof v) < 0) {
            /* empty: nothing to drain */
        }
        if (r.submitted) {
            jsonw w = {0};
            unsigned status;
            size_t json_len;
            bool binary;
            kserve_infer_response(&r, &w, &status, &json_len, &binary);
            if (w.len < json_len || (status == 200 && !w.oom && w.len == 0))
                abort();
            jsonw_free(&w);
        } else if (!r.err_status) {
            abort(); /* refused at submit: it must say why */
        }
    } else if (!r.err_status || !r.err_msg[0]) {
        abort(); /* not submitted: it must say why */
    }
    srv_request_release_infer(&r);
    free(r.body);
    return 0;
}
