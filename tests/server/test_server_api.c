/*
 * test_server_api.c - the ferry_server_* C API on mlp-s: configuration
 * defaults and bad arguments, ownership of model/engine/batcher (taken only
 * on success), start on a free port, a request over a plain socket, a port
 * already in use, stop twice, destroy. The protocol itself is covered end to
 * end by test_server.py.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "ferry.h"

#define MODEL_PATH FERRY_BUILD_DIR "/models/mlp-s.onnx"

typedef struct stack {
    ferry_model *m;
    ferry_engine *e;
    ferry_batcher *b;
} stack;

static void make_stack(stack *s)
{
    assert_int_equal(ferry_model_load(MODEL_PATH, &s->m), FERRY_OK);
    ferry_engine_config ec;
    ferry_engine_config_init(&ec);
    ec.workers = 1;
    ec.max_batch = 16;
    assert_int_equal(ferry_engine_create(s->m, &ec, &s->e), FERRY_OK);
    ferry_batcher_config bc;
    ferry_batcher_config_init(&bc);
    assert_int_equal(ferry_batcher_create(s->e, &bc, &s->b), FERRY_OK);
}

static void free_stack(stack *s)
{
    ferry_batcher_destroy(s->b);
    ferry_engine_destroy(s->e);
    ferry_model_destroy(s->m);
}

/* One request with Connection: close; returns the whole answer (malloc). */
static char *http(int port, const char *req)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    size_t n = strlen(req);
    assert_int_equal(write(fd, req, n), (ssize_t)n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    ssize_t k;
    while ((k = read(fd, buf + len, cap - 1 - len)) > 0) {
        len += (size_t)k;
        if (len == cap - 1) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    buf[len] = '\0';
    close(fd);
    return buf;
}

static void test_config_and_bad_arguments(void **state)
{
    (void)state;
    ferry_server_config c;
    ferry_server_config_init(&c);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 8000);
    assert_int_equal(c.max_body, (size_t)64 << 20);
    assert_true(c.threads >= 1);
    assert_int_equal(c.connection_timeout, 30);

    ferry_server *s = NULL;
    c.port = 70000;
    assert_int_equal(ferry_server_create(&c, &s), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "70000"));
    assert_null(s);
    c.port = 0;
    c.connection_timeout = -2;
    assert_int_equal(ferry_server_create(&c, &s), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "connection timeout -2"));
    assert_null(s);
    assert_int_equal(ferry_server_create(NULL, NULL), FERRY_EINVAL);

    assert_int_equal(ferry_server_create(NULL, &s), FERRY_OK);
    assert_int_equal(ferry_server_port(s), -1);
    assert_int_equal(ferry_server_start(s), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "no model"));
    assert_int_equal(ferry_server_stop(s), FERRY_OK); /* never started: nothing to do */
    ferry_server_destroy(s);
    ferry_server_destroy(NULL);
}

static void test_add_model_ownership(void **state)
{
    (void)state;
    ferry_server_config c;
    ferry_server_config_init(&c);
    c.port = 0;
    ferry_server *s;
    assert_int_equal(ferry_server_create(&c, &s), FERRY_OK);
    stack a, b;
    make_stack(&a);
    assert_int_equal(ferry_server_add_model(s, "mlp", NULL, a.m, a.e, NULL), FERRY_EINVAL);
    assert_int_equal(ferry_server_add_model(s, "a/b", "1", a.m, a.e, a.b), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "'/'"));
    assert_int_equal(ferry_server_add_model(s, "mlp", NULL, a.m, a.e, a.b), FERRY_OK);
    make_stack(&b);
    assert_int_equal(ferry_server_add_model(s, "mlp", "1", b.m, b.e, b.b), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "already served"));
    free_stack(&b);          /* refused: still ours */
    ferry_server_destroy(s); /* destroys a's batcher, engine, model */
}

static void test_serves_and_stops(void **state)
{
    (void)state;
    ferry_server_config c;
    ferry_server_config_init(&c);
    c.port = 0;
    c.threads = 2;
    ferry_server *s;
    assert_int_equal(ferry_server_create(&c, &s), FERRY_OK);
    stack a;
    make_stack(&a);
    assert_int_equal(ferry_server_add_model(s, "mlp-s", "3", a.m, a.e, a.b), FERRY_OK);
    assert_int_equal(ferry_server_start(s), FERRY_OK);
    int port = ferry_server_port(s);
    assert_true(port > 0 && port < 65536);

    char *r = http(port, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    free(r);
    r = http(port, "GET /v2/models/mlp-s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(r, "\"versions\":[\"3\"]"));
    free(r);

    /* one sample of 256 ones */
    char body[4096];
    size_t o = (size_t)snprintf(body, sizeof body,
                                "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
                                "\"shape\":[1,256],\"data\":[");
    for (int i = 0; i < 256; i++)
        o += (size_t)snprintf(body + o, sizeof body - o, i ? ",1" : "1");
    o += (size_t)snprintf(body + o, sizeof body - o, "]}]}");
    char req[8192];
    snprintf(req, sizeof req,
             "POST /v2/models/mlp-s/versions/3/infer HTTP/1.1\r\nHost: x\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n%s",
             o, body);
    r = http(port, req);
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    assert_non_null(strstr(r, "\"model_version\":\"3\""));
    assert_non_null(strstr(r, "\"shape\":[1,256]"));
    free(r);

    /* another server cannot take the same port */
    ferry_server_config c2 = c;
    c2.port = port;
    ferry_server *s2;
    assert_int_equal(ferry_server_create(&c2, &s2), FERRY_OK);
    stack b;
    make_stack(&b);
    assert_int_equal(ferry_server_add_model(s2, "mlp-s", NULL, b.m, b.e, b.b), FERRY_OK);
    assert_int_equal(ferry_server_start(s2), FERRY_EIO);
    assert_non_null(strstr(ferry_last_error(), "cannot listen"));
    ferry_server_destroy(s2);

    /* models are added before start */
    stack d;
    make_stack(&d);
    assert_int_equal(ferry_server_add_model(s, "late", NULL, d.m, d.e, d.b), FERRY_EINVAL);
    free_stack(&d);

    assert_int_equal(ferry_server_stop(s), FERRY_OK);
    assert_int_equal(ferry_server_stop(s), FERRY_OK);
    ferry_server_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_and_bad_arguments),
        cmocka_unit_test(test_add_model_ownership),
        cmocka_unit_test(test_serves_and_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
