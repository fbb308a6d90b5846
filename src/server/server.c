/*
 * server.c - the ferry_server object: lifecycle, libmicrohttpd wiring and
 * routing of the KServe v2 / Open Inference Protocol endpoints.
 *
 * Threads: cfg.threads HTTP threads (loop.c), each running its own MHD
 * daemon and owning the connections it accepted. An infer request is parsed
 * on its connection's thread, submitted to the model's batcher, and the
 * connection is suspended; the batcher callback only records the status,
 * resumes the connection and wakes its thread, so the response is written
 * back on the connection's own thread. No thread ever blocks on a request,
 * and the batcher threads never format JSON.
 */
#include "server/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/cpus.h"
#include "util/error.h"
#include "util/log.h"
#include "util/thread.h"
#include "util/timeutil.h"

/* A body whose Content-Length exceeds max_body by more than this is refused
 * at once and the connection closed; smaller excesses are read and dropped,
 * so that the client gets its 413 on a healthy keep-alive connection
 * instead of a reset while it is still sending. A body of unknown length
 * (chunked) is read and dropped up to the same excess, then the connection
 * is closed: MHD lets us answer only before a body or after its last chunk,
 * and its chunks may claim up to 2^64-1 bytes. */
#define DRAIN_LIMIT (64u << 20)
/* A body is allocated whole up to this size from its Content-Length; past
 * it, it grows as the bytes arrive, so that connections that declare 64 MiB
 * and send one byte do not reserve 64 MiB each. */
#define BODY_PREALLOC ((size_t)1 << 20)
/* How long stop waits for accepted requests to be answered. */
#define STOP_GRACE_MS 10000
/* Then, how long it keeps serving open keep-alive connections: a request
 * already on its way gets a 503 "shutting down" with Connection: close
 * (and the client closes) instead of a reset when the daemon stops. */
#define STOP_LINGER_MS 300

static ferry_status table_add(ferry_server *s, srv_model *m);
static bool route_is_post(srv_route route);

void ferry_server_config_init(ferry_server_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->port = 8000;
    cfg->max_body = (size_t)64 << 20;
    cfg->threads = ferry_usable_cpus();
    /* long enough for a slow client on a slow link to send one request;
     * short enough that idle connections, and half-sent ones whose client
     * went quiet, free their slots soon. (MHD restarts it on every byte
     * read: a client trickling a byte at a time keeps its slot; only
     * connection_limit() bounds those.) */
    cfg->connection_timeout = 30;
}

ferry_status ferry_server_create(const ferry_server_config *cfg, ferry_server **out)
{
    if (!out)
        return ferry_fail(FERRY_EINVAL, "ferry_server_create: out is NULL");
    *out = NULL;
    ferry_server_config def;
    ferry_server_config_init(&def);
    if (!cfg)
        cfg = &def;
    if (cfg->port < 0 || cfg->port > 65535)
        return ferry_fail(FERRY_EINVAL, "server: port %d is out of range 0..65535", cfg->port);
    if (cfg->threads < 0 || cfg->threads > 1024)
        return ferry_fail(FERRY_EINVAL, "server: threads %d is out of range 1..1024", cfg->threads);
    if (cfg->connection_timeout < -1)
        return ferry_fail(FERRY_EINVAL,
                          "server: connection timeout %d s: expected seconds, 0 (the default) "
                          "or -1 (never)",
                          cfg->connection_timeout);
    ferry_server *s = calloc(1, sizeof *s);
    if (!s)
        return ferry_fail(FERRY_ENOMEM, "server: out of memory");
    s->cfg = *cfg;
    if (s->cfg.threads == 0)
        s->cfg.threads = def.threads;
    if (s->cfg.max_body == 0)
        s->cfg.max_body = def.max_body;
    if (s->cfg.connection_timeout == 0) /* zero-filled configs get the default too */
        s->cfg.connection_timeout = def.connection_timeout;
    s->host = strdup(cfg->host && *cfg->host ? cfg->host : def.host);
    if (!s->host) {
        free(s);
        return ferry_fail(FERRY_ENOMEM, "server: out of memory");
    }
    s->cfg.host = s->host;
    s->listen_fd = -1;
    /* writers first: a reload must not wait out a stream of lookups */
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int rc = pthread_rwlock_init(&s->models_lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    if (rc) {
        free(s->host);
        free(s);
        return ferry_fail(FERRY_ENOMEM, "server: pthread_rwlock_init: %s", strerror(rc));
    }
    *out = s;
    return FERRY_OK;
}

void srv_model_free(srv_model *m)
{
    if (!m)
        return;
    ferry_batcher_destroy(m->batcher);
    ferry_engine_destroy(m->engine);
    ferry_model_destroy(m->model);
    free(m->name);
    free(m->version);
    free(m->in);
    free(m->out);
    free(m->in_sample_numel);
    free(m->out_sample_numel);
    free(m);
}

static srv_model *find_model(ferry_server *s, const char *name, const char *version)
{
    srv_model *best = NULL;
    for (int i = 0; i < s->n_models; i++) {
        srv_model *m = s->models[i];
        if (strcmp(m->name, name))
            continue;
        if (version) {
            if (!strcmp(m->version, version))
                return m;
            continue;
        }
        /* no version asked: the highest, numerically when both are numbers */
        if (!best) {
            best = m;
        } else {
            char *e1, *e2;
            long long a = strtoll(m->version, &e1, 10), b = strtoll(best->version, &e2, 10);
            bool num = !*e1 && !*e2;
            if (num ? a > b : strcmp(m->version, best->version) > 0)
                best = m;
        }
    }
    return best;
}

ferry_status ferry_server_add_model(ferry_server *s, const char *name, const char *version,
                                    ferry_model *mdl, ferry_engine *e, ferry_batcher *b)
{
    if (!s || !name || !*name || !mdl || !e || !b)
        return ferry_fail(FERRY_EINVAL, "ferry_server_add_model: NULL argument");
    if (s->started)
        return ferry_fail(FERRY_EINVAL, "server: add model '%s' before starting", name);
    if (!version || !*version)
        version = "1";
    if (strchr(name, '/') || strchr(version, '/'))
        return ferry_fail(FERRY_EINVAL, "server: model name '%s' or version '%s' contains '/'",
                          name, version);
    if (find_model(s, name, version))
        return ferry_fail(FERRY_EINVAL, "server: model '%s' version '%s' is already served", name,
                          version);

    srv_model *m;
    ferry_status st = srv_model_new(name, version, mdl, e, b, &m);
    if (st != FERRY_OK)
        return st;
    pthread_rwlock_wrlock(&s->models_lock);
    st = table_add(s, m);
    pthread_rwlock_unlock(&s->models_lock);
    if (st != FERRY_OK) {
        /* ownership was not taken */
        m->model = NULL;
        m->engine = NULL;
        m->batcher = NULL;
        srv_model_free(m);
    }
    return st;
}

ferry_status srv_model_new(const char *name, const char *version, ferry_model *mdl, ferry_engine *e,
                           ferry_batcher *b, srv_model **out)
{
    ferry_status st = FERRY_ENOMEM;
    srv_model *m = calloc(1, sizeof *m);
    if (!m)
        return ferry_fail(FERRY_ENOMEM, "server: out of memory");
    m->n_in = ferry_model_num_inputs(mdl);
    m->n_out = ferry_model_num_outputs(mdl);
    if (m->n_in < 1 || m->n_out < 1) {
        st = ferry_fail(FERRY_EUNSUPPORTED, "server: model '%s' has %d inputs and %d outputs", name,
                        m->n_in, m->n_out);
        goto fail;
    }
    m->name = strdup(name);
    m->version = strdup(version);
    m->in = calloc((size_t)m->n_in, sizeof *m->in);
    m->out = calloc((size_t)m->n_out, sizeof *m->out);
    m->in_sample_numel = calloc((size_t)m->n_in, sizeof(int64_t));
    m->out_sample_numel = calloc((size_t)m->n_out, sizeof(int64_t));
    if (!m->name || !m->version || !m->in || !m->out || !m->in_sample_numel ||
        !m->out_sample_numel) {
        st = ferry_fail(FERRY_ENOMEM, "server: out of memory");
        goto fail;
    }
    for (int i = 0; i < m->n_in; i++) {
        if ((st = ferry_model_input(mdl, i, &m->in[i])) != FERRY_OK)
            goto fail;
        if (m->in[i].ndim < 1 || ferry_dtype_size(m->in[i].dtype) == 0) {
            st = ferry_fail(FERRY_EUNSUPPORTED,
                            "server: model '%s' input '%s' needs a batch dimension and a "
                            "known dtype",
                            name, m->in[i].name);
            goto fail;
        }
        int64_t n = 1;
        for (int d = 1; d < m->in[i].ndim; d++) {
            if (m->in[i].shape[d] < 0) {
                st = ferry_fail(FERRY_EUNSUPPORTED,
                                "server: model '%s' input '%s' has a dynamic dimension %d "
                                "besides the batch",
                                name, m->in[i].name, d);
                goto fail;
            }
            n *= m->in[i].shape[d];
        }
        m->in_sample_numel[i] = n;
    }
    m->max_batch = ferry_engine_get_config(e)->max_batch;
    m->prio_levels = ferry_batcher_get_config(b)->priority_levels;
    m->prio_default = ferry_batcher_get_config(b)->default_priority;
    for (int i = 0; i < m->n_out; i++) {
        if ((st = ferry_model_output(mdl, i, &m->out[i])) != FERRY_OK)
            goto fail;
        ferry_tensor t;
        if ((st = ferry_engine_output_info(e, i, 1, &t)) != FERRY_OK)
            goto fail;
        if (t.ndim < 1 || t.shape[0] != 1) {
            st = ferry_fail(FERRY_EUNSUPPORTED,
                            "server: model '%s' output '%s' has no leading batch dimension", name,
                            m->out[i].name);
            goto fail;
        }
        /* keep the concrete per-sample shape; dims[0] stays the batch */
        m->out[i].ndim = t.ndim;
        for (int d = 1; d < t.ndim; d++)
            m->out[i].shape[d] = t.shape[d];
        m->out[i].shape[0] = FERRY_DIM_BATCH;
        m->out[i].dtype = t.dtype;
        m->out_sample_numel[i] = ferry_tensor_numel(&t);
    }
    m->model = mdl;
    m->engine = e;
    m->batcher = b;
    atomic_init(&m->refs, 1);
    atomic_init(&m->retired, false);
    *out = m;
    return FERRY_OK;
fail:
    /* ownership was not taken: leave model, engine and batcher to the caller */
    m->model = NULL;
    m->engine = NULL;
    m->batcher = NULL;
    srv_model_free(m);
    return st;
}

/* Appends m to the table (write lock held). */
static ferry_status table_add(ferry_server *s, srv_model *m)
{
    if (s->n_models == s->cap_models) {
        int cap = s->cap_models ? 2 * s->cap_models : 4;
        srv_model **nm = realloc(s->models, (size_t)cap * sizeof *nm);
        if (!nm)
            return ferry_fail(FERRY_ENOMEM, "server: out of memory");
        s->models = nm;
        s->cap_models = cap;
    }
    s->models[s->n_models++] = m;
    return FERRY_OK;
}

srv_model *srv_model_get(ferry_server *s, const char *name, const char *version)
{
    pthread_rwlock_rdlock(&s->models_lock);
    srv_model *m = find_model(s, name, version);
    if (m)
        atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    pthread_rwlock_unlock(&s->models_lock);
    return m;
}

void srv_model_put(ferry_server *s, srv_model *m)
{
    /* read before letting go: once the count is down, repo.c may free m.
     * A retirement this read misses is found by repo.c's own look. */
    bool retired = atomic_load(&m->retired);
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 2 && retired)
        srv_repo_kick(s->repo);
}

ferry_status srv_models_swap(ferry_server *s, const char *name, srv_model **add, int n_add,
                             srv_model **old)
{
    *old = NULL;
    pthread_rwlock_wrlock(&s->models_lock);
    ferry_status st = FERRY_OK;
    for (int i = 0; i < s->n_models; i++)
        if (!strcmp(s->models[i]->name, name) && !s->models[i]->from_repo) {
            st = ferry_fail(FERRY_EINVAL,
                            "model '%s' is served from the command line (--model), not the "
                            "repository",
                            name);
            goto out;
        }
    if (s->n_models + n_add > s->cap_models) {
        int cap = s->n_models + n_add + 4;
        srv_model **nm = realloc(s->models, (size_t)cap * sizeof *nm);
        if (!nm) {
            st = ferry_fail(FERRY_ENOMEM, "server: out of memory");
            goto out;
        }
        s->models = nm;
        s->cap_models = cap;
    }
    int k = 0;
    for (int i = 0; i < s->n_models; i++) {
        srv_model *m = s->models[i];
        if (strcmp(m->name, name)) {
            s->models[k++] = m;
            continue;
        }
        atomic_store(&m->retired, true);
        m->next_retired = *old;
        *old = m;
    }
    s->n_models = k;
    for (int i = 0; i < n_add; i++)
        s->models[s->n_models++] = add[i];
out:
    pthread_rwlock_unlock(&s->models_lock);
    return st;
}

/* ------------------------------------------------------------- responses */

/* The log's lines about a request, once its answer is queued: a failed
 * infer request (any POST: infer is the only one) at warn, at error when
 * the engine failed it; with the access log, or at verbose, a line for
 * every request. */
static void log_request(srv_request *r, unsigned status, size_t bytes)
{
    const ferry_server_config *cfg = &r->srv->cfg;
    ferry_log_level lvl = cfg->log_level;
    if (status >= 400 && !strcmp(r->method, "POST")) {
        const char *reason = r->counted ? srv_outcome_name(r->outcome) : "OTHER";
        ferry_log(lvl, r->counted && r->outcome == SRV_BACKEND ? FERRY_LOG_ERROR : FERRY_LOG_WARN,
                  "request failed: model %.100s version %.20s: %u %s: %s",
                  r->model ? r->model->name : "-", r->model ? r->model->version : "-", status,
                  reason, r->err_msg[0] ? r->err_msg : "-");
    }
    bool access = cfg->access_log && lvl >= FERRY_LOG_INFO;
    if (!access && lvl < FERRY_LOG_VERBOSE)
        return;
    char addr[INET6_ADDRSTRLEN] = "-";
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr, sizeof addr);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr, sizeof addr);
    }
    ferry_log(lvl, access ? FERRY_LOG_INFO : FERRY_LOG_VERBOSE, "%s \"%s %s\" %u %zu %.3f ms", addr,
              r->method, r->path, status, bytes, (double)(ferry_now_us() - r->t_start) / 1000.0);
}

static enum MHD_Result queue_reply(srv_request *r, unsigned status, jsonw *w, const char *ctype,
                                   long long header_len)
{
    struct MHD_Response *resp;
    size_t bytes = w->oom ? 0 : w->len;
    if (w->oom) {
        jsonw_free(w);
        static const char oom[] = "{\"error\":\"server out of memory\"}";
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        ctype = "application/json";
        header_len = -1;
        resp = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
    } else if (w->len == 0) {
        jsonw_free(w);
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else {
        resp = MHD_create_response_from_buffer_with_free_callback(w->len, w->buf, free);
        if (resp)
            w->buf = NULL; /* the response owns it now */
        jsonw_free(w);
    }
    if (!resp)
        return MHD_NO;
    if (ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (header_len >= 0) {
        char num[24];
        snprintf(num, sizeof num, "%lld", header_len);
        MHD_add_response_header(resp, "Inference-Header-Content-Length", num);
    }
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                                route_is_post(r->route) ? "POST" : "GET, HEAD");
    if (r->close || atomic_load(&r->srv->stopping))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    if (r->srv->cfg.log_level != FERRY_LOG_OFF)
        log_request(r, status, bytes);
    return ret;
}

static enum MHD_Result reply_json(srv_request *r, unsigned status, jsonw *w)
{
    return queue_reply(r, status, w, "application/json", -1);
}

static enum MHD_Result reply_error(srv_request *r, unsigned status, const char *msg)
{
    if (msg != r->err_msg) /* the log says why */
        snprintf(r->err_msg, sizeof r->err_msg, "%s", msg);
    jsonw w = {0};
    jsonw_str_raw(&w, "{\"error\":");
    jsonw_str(&w, msg);
    jsonw_char(&w, '}');
    return reply_json(r, status, &w);
}

static void set_error(srv_request *r, unsigned status, const char *fmt, const char *a,
                      const char *b)
{
    r->err_status = status;
    snprintf(r->err_msg, sizeof r->err_msg, fmt, a, b);
}

/* ------------------------------------------------------------- framing */

typedef struct header_count {
    int content_length, transfer_encoding;
} header_count;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    header_count *n = cls;
    (void)kind;
    (void)value;
    n->content_length += !strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH);
    n->transfer_encoding += !strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    return MHD_YES;
}

/*
 * Where the body ends must be beyond doubt, else a proxy in front of us and
 * we could split the bytes into requests differently (request smuggling).
 * MHD looks up only the first Content-Length and lets Transfer-Encoding
 * override it; so two Content-Lengths (even equal), or Transfer-Encoding
 * beside one, are a 400 (RFC 9112 6.3 allows either). MHD reads a body as
 * chunked only when the coding is exactly "chunked"; with any other it reads
 * until the client closes, so the request would hang to the connection
 * timeout: a 501, as Triton and nginx answer an unknown transfer coding.
 * Either way the connection is closed after the reply, so that nothing
 * after the headers is read as another request. true when r has its error.
 */
static bool bad_framing(srv_request *r)
{
    header_count n = {0, 0};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_header, &n);
    const char *te =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (n.content_length > 1) {
        r->err_status = MHD_HTTP_BAD_REQUEST;
        snprintf(r->err_msg, sizeof r->err_msg, "%d Content-Length headers: at most one is allowed",
                 n.content_length);
    } else if (n.content_length && n.transfer_encoding) {
        set_error(r, MHD_HTTP_BAD_REQUEST,
                  "Transfer-Encoding '%.40s' and Content-Length together: send one of them%s",
                  te ? te : "", "");
    } else if (n.transfer_encoding > 1) {
        /* several headers are one list of codings: not "chunked" alone */
        r->err_status = MHD_HTTP_NOT_IMPLEMENTED;
        snprintf(r->err_msg, sizeof r->err_msg,
                 "%d Transfer-Encoding headers: only one, 'chunked', is supported",
                 n.transfer_encoding);
    } else if (te && strcasecmp(te, "chunked")) {
        set_error(r, MHD_HTTP_NOT_IMPLEMENTED,
                  "Transfer-Encoding '%.40s' is not supported: only 'chunked' is%s", te, "");
    } else {
        return false;
    }
    r->close = true;
    return true;
}

/* --------------------------------------------------------------- routing */

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/*
 * MHD's URL decoding, less two escapes: %2F stays as it is, so that it
 * cannot add a path segment after routing is meant to see them
 * (/v2/models/m%2Fready is a model named "m%2Fready", not m's ready
 * endpoint), and so does %00, which would cut the path short where MHD
 * hands it over as a C string. Malformed escapes are left, as MHD does.
 */
static size_t unescape_url(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    char *w = s;
    for (const char *p = s; *p;) {
        int hi = p[0] == '%' ? hex_digit(p[1]) : -1, lo = hi >= 0 ? hex_digit(p[2]) : -1;
        int ch = hi * 16 + lo;
        if (lo < 0 || ch == '/' || ch == 0) {
            *w++ = *p++;
        } else {
            *w++ = (char)ch;
            p += 3;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

static bool is_get(const char *method)
{
    return !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
}

static bool route_is_post(srv_route route)
{
    return route == ROUTE_INFER || route == ROUTE_REPO_INDEX || route == ROUTE_REPO_LOAD ||
           route == ROUTE_REPO_UNLOAD;
}

/* The 404 of a model that is not served: an unknown version, or why the
 * repository does not serve it. */
static void model_missing(ferry_server *s, srv_request *r, const char *name, const char *version)
{
    pthread_rwlock_rdlock(&s->models_lock);
    bool other_version = version && find_model(s, name, NULL);
    pthread_rwlock_unlock(&s->models_lock);
    char why[400];
    if (other_version)
        set_error(r, MHD_HTTP_NOT_FOUND, "unknown version '%s' of model '%.100s'", version, name);
    else if (s->repo && srv_repo_absent(s->repo, name, why, sizeof why))
        set_error(r, MHD_HTTP_NOT_FOUND, "%s%s", why, "");
    else
        set_error(r, MHD_HTTP_NOT_FOUND, "unknown model '%.100s'%s", name, "");
}

/* Splits "/v2/models/NAME[/versions/V][/ready|/infer]", the repository's
 * paths and the fixed paths. */
static void route(ferry_server *s, srv_request *r, const char *url, const char *method)
{
    bool get = is_get(method);
    srv_route want = ROUTE_NONE;
    if (!strcmp(url, "/v2/health/live")) {
        want = ROUTE_LIVE;
    } else if (!strcmp(url, "/v2/health/ready")) {
        want = ROUTE_READY;
    } else if (!strcmp(url, "/v2") || !strcmp(url, "/v2/")) {
        want = ROUTE_SERVER_META;
    } else if (!strcmp(url, "/metrics")) {
        want = ROUTE_METRICS;
    } else if (!strncmp(url, "/v2/models/", 11)) {
        if (url[11] == '\0' || url[11] == '/') { /* strtok_r below would skip it */
            set_error(r, MHD_HTTP_NOT_FOUND, "the model name is empty in '%.200s'%s", url, "");
            return;
        }
        char path[512];
        if (strlen(url + 11) >= sizeof path) {
            set_error(r, MHD_HTTP_NOT_FOUND, "unknown path '%.200s'%s", url, "");
            return;
        }
        strcpy(path, url + 11);
        char *seg[5];
        int n = 0;
        for (char *p = path, *save = NULL; n < 5; p = NULL) {
            char *t = strtok_r(p, "/", &save);
            if (!t)
                break;
            seg[n++] = t;
        }
        const char *name = n > 0 ? seg[0] : NULL, *version = NULL, *action = NULL;
        int k = 1;
        if (n >= 3 && !strcmp(seg[1], "versions")) {
            version = seg[2];
            k = 3;
        }
        if (n == k + 1)
            action = seg[k];
        else if (n != k)
            name = NULL;
        if (!name || (action && strcmp(action, "ready") && strcmp(action, "infer"))) {
            set_error(r, MHD_HTTP_NOT_FOUND, "unknown path '%.200s'%s", url, "");
            return;
        }
        want = !action                    ? ROUTE_MODEL_META
               : !strcmp(action, "ready") ? ROUTE_MODEL_READY
                                          : ROUTE_INFER;
        r->route = want; /* so that a 405 names the right Allow */
        r->model = srv_model_get(s, name, version);
        if (!r->model) {
            model_missing(s, r, name, version);
            return;
        }
    } else if (!strcmp(url, "/v2/repository/index")) {
        want = ROUTE_REPO_INDEX;
    } else if (!strncmp(url, "/v2/repository/models/", 22)) {
        const char *name = url + 22, *slash = strchr(name, '/');
        want = !slash                      ? ROUTE_NONE
               : !strcmp(slash, "/load")   ? ROUTE_REPO_LOAD
               : !strcmp(slash, "/unload") ? ROUTE_REPO_UNLOAD
                                           : ROUTE_NONE;
        if (want == ROUTE_NONE || slash == name || slash - name > 255) {
            set_error(r, MHD_HTTP_NOT_FOUND, "unknown path '%.200s'%s", url, "");
            return;
        }
        r->repo_name = strndup(name, (size_t)(slash - name));
        if (!r->repo_name) {
            set_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory%s%s", "", "");
            return;
        }
    } else {
        set_error(r, MHD_HTTP_NOT_FOUND, "unknown path '%.200s'%s", url, "");
        return;
    }
    r->route = want;
    bool ok = route_is_post(want) ? !strcmp(method, MHD_HTTP_METHOD_POST) : get;
    if (!ok)
        set_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method %.20s is not allowed on '%.200s'", method,
                  url);
}

/* ------------------------------------------------------------- requests */

void srv_request_release_infer(srv_request *r)
{
    free(r->out_mem); /* outputs and sel live in it */
    free(r->id);
    r->out_mem = NULL;
    r->outputs = NULL;
    r->sel = NULL;
    r->id = NULL;
    r->id_n = 0;
}

srv_outcome srv_outcome_of(ferry_status st)
{
    switch (st) {
    case FERRY_OK: return SRV_SUCCESS;
    case FERRY_EBUSY:
    case FERRY_ETIMEDOUT:
    case FERRY_ESHUTDOWN: return SRV_REJECTED;
    case FERRY_EINVAL:
    case FERRY_ESHAPE:
    case FERRY_EDTYPE: return SRV_OTHER;
    default: return SRV_BACKEND;
    }
}

const char *srv_outcome_name(srv_outcome how)
{
    static const char *const name[SRV_OUTCOMES] = {"SUCCESS", "REJECTED", "CANCELED", "BACKEND",
                                                   "OTHER"};
    return how < SRV_OUTCOMES ? name[how] : "OTHER";
}

void srv_request_count(srv_request *r, srv_outcome how)
{
    if (r->counted || !r->model || r->route != ROUTE_INFER)
        return;
    r->counted = true;
    r->outcome = how;
    atomic_fetch_add_explicit(&r->model->n_outcome[how], 1, memory_order_relaxed);
}

void srv_request_resume(srv_request *r)
{
    srv_worker *w = r->worker; /* r may be gone once resumed */
    MHD_resume_connection(r->conn);
    srv_worker_wake(w);
}

static void request_free(srv_request *r)
{
    if (!r)
        return;
    if (r->model)
        srv_model_put(r->srv, r->model);
    free(r->repo_name);
    srv_request_release_infer(r);
    free(r->body);
    free(r);
}

static bool body_append(srv_request *r, const char *data, size_t n)
{
    size_t max = r->srv->cfg.max_body;
    if (r->len + n > max) {
        r->body_too_big = true;
        free(r->body);
        r->body = NULL;
        r->len = r->cap = 0;
        return true;
    }
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n)
            cap *= 2;
        if (cap > max)
            cap = max;
        if (r->expect >= r->len + n && cap > r->expect)
            cap = r->expect; /* no more than the declared length */
        char *nb = realloc(r->body, cap);
        if (!nb)
            return false;
        r->body = nb;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    return true;
}

/* A model on several GPUs serves while any of them does (engine.c takes a
 * device whose stream failed out of service). */
static bool model_serving(const srv_model *m)
{
    int n = ferry_engine_num_devices(m->engine);
    for (int k = 0; k < n; k++)
        if (ferry_engine_device_ok(m->engine, k))
            return true;
    return n == 0;
}

static bool server_ready(ferry_server *s)
{
    return s->started && !atomic_load(&s->stopping);
}

/* The last handler call of a request: every byte of the body is in. */
static enum MHD_Result respond(srv_request *r)
{
    ferry_server *s = r->srv;
    jsonw w = {0};
    if (r->submitted) {
        unsigned status;
        size_t json_len;
        bool binary;
        kserve_infer_response(r, &w, &status, &json_len, &binary); /* counted by on_done */
        srv_request_release_infer(r);
        r->submitted = false;
        if (binary)
            return queue_reply(r, status, &w, "application/octet-stream", (long long)json_len);
        return reply_json(r, status, &w);
    }
    if (r->body_too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body exceeds the limit of %zu bytes (--max-body)",
                 s->cfg.max_body);
        srv_request_count(r, SRV_OTHER);
        return reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, msg);
    }
    if (r->err_status) {
        srv_request_count(r, SRV_OTHER);
        return reply_error(r, r->err_status, r->err_msg);
    }
    /* Health: the protocol's answer is the status alone, 200 for true and
     * a 4xx (400, as Triton answers) for false, with an empty body. */
    switch (r->route) {
    case ROUTE_LIVE: return queue_reply(r, MHD_HTTP_OK, &w, NULL, -1);
    case ROUTE_READY:
    case ROUTE_MODEL_READY: {
        bool ok = server_ready(s) && (r->route == ROUTE_READY || model_serving(r->model));
        return queue_reply(r, ok ? MHD_HTTP_OK : MHD_HTTP_BAD_REQUEST, &w, NULL, -1);
    }
    case ROUTE_SERVER_META: kserve_server_metadata(s, &w); return reply_json(r, MHD_HTTP_OK, &w);
    case ROUTE_MODEL_META:
        pthread_rwlock_rdlock(&s->models_lock); /* it lists the model's versions */
        kserve_model_metadata(s, r->model, &w);
        pthread_rwlock_unlock(&s->models_lock);
        return reply_json(r, MHD_HTTP_OK, &w);
    case ROUTE_METRICS:
        pthread_rwlock_rdlock(&s->models_lock);
        metrics_write(s, &w);
        pthread_rwlock_unlock(&s->models_lock);
        return queue_reply(r, MHD_HTTP_OK, &w, "text/plain; version=0.0.4; charset=utf-8", -1);
    case ROUTE_INFER: {
        /* Announce before checking stopping (see struct ferry_server). */
        atomic_fetch_add(&s->in_submit, 1);
        if (atomic_load(&s->stopping)) {
            atomic_fetch_sub(&s->in_submit, 1);
            srv_request_count(r, SRV_REJECTED);
            return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "server is shutting down");
        }
        bool suspended = kserve_submit(r);
        atomic_fetch_sub(&s->in_submit, 1);
        if (suspended)
            return MHD_YES; /* answered when the batcher resumes the connection */
        srv_request_release_infer(r);
        srv_request_count(r, SRV_OTHER);
        return reply_error(r, r->err_status, r->err_msg);
    }
    case ROUTE_REPO_INDEX:
    case ROUTE_REPO_LOAD:
    case ROUTE_REPO_UNLOAD: {
        unsigned status = MHD_HTTP_OK;
        if (!s->repo) {
            set_error(r, MHD_HTTP_BAD_REQUEST,
                      "no model repository: start with --model-repository DIR to use the "
                      "repository API%s%s",
                      "", "");
        } else if (!srv_repo_request(r, &w, &status)) {
            return MHD_YES; /* answered when the repository thread resumes it */
        }
        if (r->err_status) {
            jsonw_free(&w);
            return reply_error(r, r->err_status, r->err_msg);
        }
        return reply_json(r, status, &w);
    }
    case ROUTE_NONE: break;
    }
    return reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "request without a route");
}

/* A length header's value: decimal digits only (strtoll would take a sign,
 * leading spaces and a trailing remainder). */
static bool parse_length(const char *v, long long *out)
{
    long long n = 0;
    if (!*v)
        return false;
    for (; *v; v++) {
        if (*v < '0' || *v > '9' || n > (LLONG_MAX - 9) / 10)
            return false;
        n = n * 10 + (*v - '0');
    }
    *out = n;
    return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    srv_worker *w = cls;
    ferry_server *s = w->srv;
    srv_request *r = *con_cls;
    (void)version;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->srv = s;
        r->worker = w;
        r->conn = conn;
        r->header_len = -1;
        if (s->cfg.log_level != FERRY_LOG_OFF) {
            r->t_start = ferry_now_us();
            snprintf(r->method, sizeof r->method, "%s", method);
            snprintf(r->path, sizeof r->path, "%s", url);
        }
        *con_cls = r;
        atomic_fetch_add(&s->active, 1);
        route(s, r, url, method);
        if (bad_framing(r))
            return respond(r); /* early, before any of the body is read */
        /* only an infer request has a body this header describes */
        bool reads_body = route_is_post(r->route);
        const char *v = r->route == ROUTE_INFER && !r->err_status
                            ? MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                          "Inference-Header-Content-Length")
                            : NULL;
        if (v && !parse_length(v, &r->header_len))
            set_error(r, MHD_HTTP_BAD_REQUEST,
                      "bad Inference-Header-Content-Length '%.40s': expected a number of bytes%s",
                      v, "");
        v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (v) {
            unsigned long long cl = strtoull(v, NULL, 10);
            if (cl > s->cfg.max_body) {
                r->body_too_big = true;
                if (cl - s->cfg.max_body > DRAIN_LIMIT)
                    return respond(r); /* early: MHD closes the connection after it */
            } else if (cl > 0 && reads_body && !r->err_status) {
                /* the usual case: one allocation */
                size_t first = cl < BODY_PREALLOC ? (size_t)cl : BODY_PREALLOC;
                r->expect = (size_t)cl;
                r->body = malloc(first);
                if (r->body)
                    r->cap = first;
            }
        }
        return MHD_YES;
    }
    if (*upload_size) {
        r->seen += *upload_size;
        if (r->seen > s->cfg.max_body + (size_t)DRAIN_LIMIT)
            return MHD_NO; /* a chunked body without end: close, unanswered */
        /* only infer and the repository read their body; others' bodies
         * are read and dropped */
        if (route_is_post(r->route) && !r->err_status && !r->body_too_big &&
            !body_append(r, upload_data, *upload_size))
            set_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory reading the body%s%s", "",
                      "");
        *upload_size = 0;
        return MHD_YES;
    }
    return respond(r);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode what)
{
    srv_worker *w = cls;
    if (what == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&w->srv->conns, 1);
        srv_conn_open(w, conn, socket_ctx);
    } else {
        srv_conn_close(w, *socket_ctx);
        atomic_fetch_sub(&w->srv->conns, 1);
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    ferry_server *s = ((srv_worker *)cls)->srv;
    (void)conn;
    (void)why;
    srv_request *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    request_free(r);
    atomic_fetch_sub(&s->active, 1);
}

/* ------------------------------------------------------------ lifecycle */

static ferry_status bind_listen(ferry_server *s)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%d", s->cfg.port);
    int rc = getaddrinfo(s->host, port, &hints, &res);
    if (rc)
        return ferry_fail(FERRY_EIO, "server: cannot resolve host '%s': %s", s->host,
                          gai_strerror(rc));
    int fd = -1, err = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 4096) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return ferry_fail(FERRY_EIO, "server: cannot listen on %s:%d: %s", s->host, s->cfg.port,
                          strerror(err));
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        err = errno;
        close(fd);
        return ferry_fail(FERRY_EIO, "server: getsockname: %s", strerror(err));
    }
    s->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    s->listen_fd = fd;
    return FERRY_OK;
}

/* Connections MHD may hold: what the descriptor limit leaves after a margin
 * for model files, eventfds and the like, so that the limit, not EMFILE on
 * accept, is what turns clients away. */
static unsigned connection_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 16384;
    if (rl.rlim_cur < 256)
        return 64;
    return rl.rlim_cur - 128 > 65536 ? 65536 : (unsigned)(rl.rlim_cur - 128);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    (void)fmt;
    (void)ap; /* MHD's messages are about clients misbehaving; not ours to print */
}

/* Stops the HTTP threads and their daemons, closing every connection
 * (at the end of stop, or when start fails halfway). */
static void workers_free(ferry_server *s)
{
    atomic_store(&s->phase, SRV_EXIT);
    for (int i = 0; i < s->n_workers; i++)
        srv_worker_join(&s->workers[i]);
    for (int i = 0; i < s->n_workers; i++) {
        srv_worker *w = &s->workers[i];
        if (!w->mhd)
            continue;
        /* quiesced, a daemon leaves the listening socket, which all share,
         * to us */
        if (!w->quiesced)
            MHD_quiesce_daemon(w->mhd);
        MHD_stop_daemon(w->mhd);
        w->mhd = NULL;
    }
    for (int i = 0; i < s->n_workers; i++)
        srv_worker_free(&s->workers[i]);
    free(s->workers);
    s->workers = NULL;
    s->n_workers = 0;
}

ferry_status ferry_server_start(ferry_server *s)
{
    if (!s)
        return ferry_fail(FERRY_EINVAL, "ferry_server_start: NULL server");
    if (s->started)
        return ferry_fail(FERRY_EINVAL, "server: already started");
    if (s->n_models == 0 && !srv_repo_may_start_empty(s->repo))
        return ferry_fail(FERRY_EINVAL, "server: no model to serve");
    ferry_status st = bind_listen(s);
    if (st)
        return st;
    /* external polling: loop.c runs each daemon (why: see there) */
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    int n = s->cfg.threads;
    s->workers = calloc((size_t)n, sizeof *s->workers);
    if (!s->workers) {
        st = ferry_fail(FERRY_ENOMEM, "server: out of memory");
        goto fail;
    }
    s->n_workers = n;
    for (int i = 0; i < n; i++)
        s->workers[i].wake = s->workers[i].ep = -1;
    atomic_store(&s->phase, SRV_RUN);
    atomic_store(&s->n_quiesced, 0);
    /* the limit is shared out as MHD's thread pool does */
    unsigned limit = connection_limit(), per = limit / (unsigned)n;
    for (int i = 0; i < n; i++) {
        srv_worker *w = &s->workers[i];
        w->srv = s;
        if ((st = srv_worker_init(w)) != FERRY_OK)
            goto fail;
        /* The timeout cannot cut off a request waiting for its batch: MHD
         * does not time out a suspended connection, and restarts its clock
         * on resume (MHD_suspend_connection in microhttpd.h). */
        sigset_t saved; /* libmicrohttpd's threads: as ours (util/thread.h) */
        ferry_signals_block(&saved);
        w->mhd = MHD_start_daemon(
            flags, 0, NULL, NULL, on_request, w, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
            MHD_OPTION_LISTEN_SOCKET, s->listen_fd, MHD_OPTION_NOTIFY_COMPLETED, on_completed, w,
            MHD_OPTION_NOTIFY_CONNECTION, on_connection, w, MHD_OPTION_UNESCAPE_CALLBACK,
            unescape_url, s, MHD_OPTION_CONNECTION_LIMIT,
            per + ((unsigned)i < limit % (unsigned)n ? 1u : 0u) + (per == 0 ? 1u : 0u),
            MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned)(s->cfg.connection_timeout > 0 ? s->cfg.connection_timeout : 0),
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(16 * 1024), MHD_OPTION_END);
        ferry_signals_restore(&saved);
        if (!w->mhd) {
            st = ferry_fail(FERRY_EINTERNAL, "server: libmicrohttpd failed to start on %s:%d",
                            s->host, s->port);
            goto fail;
        }
    }
    for (int i = 0; i < n; i++)
        if ((st = srv_worker_start(&s->workers[i])) != FERRY_OK)
            goto fail;
    if (s->repo && (st = srv_repo_start(s->repo)) != FERRY_OK)
        goto fail;
    s->started = true;
    return FERRY_OK;
fail:
    workers_free(s);
    close(s->listen_fd);
    s->listen_fd = -1;
    return st;
}

int ferry_server_port(const ferry_server *s)
{
    return s && s->started ? s->port : -1;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

ferry_status ferry_server_stop(ferry_server *s)
{
    if (!s)
        return ferry_fail(FERRY_EINVAL, "ferry_server_stop: NULL server");
    if (!s->started || s->stopped)
        return FERRY_OK;
    s->stopped = true;
    /* 0. no more loads and unloads; the requests waiting for one are answered */
    srv_repo_stop(s->repo);
    /* 1. no new connections: each HTTP thread takes the listening socket
     * out of its daemon (after accepting what was already queued); then
     * closed, it refuses new connections at once instead of queueing them
     * unserved until the end */
    atomic_store(&s->phase, SRV_QUIESCE);
    for (int i = 0; i < s->n_workers; i++)
        srv_worker_wake(&s->workers[i]);
    while (atomic_load(&s->n_quiesced) < s->n_workers)
        sleep_ms(1);
    close(s->listen_fd);
    s->listen_fd = -1;
    /* 2. no new submissions: wait out handlers between announce and submit */
    atomic_store(&s->stopping, 1);
    while (atomic_load(&s->in_submit) > 0)
        sched_yield();
    /* 3. drain: every accepted request completes and resumes its connection */
    for (int i = 0; i < s->n_models; i++) {
        ferry_batcher_destroy(s->models[i]->batcher);
        s->models[i]->batcher = NULL;
    }
    srv_repo_drain(s->repo); /* and the retired entries still answering */
    /* 4. let the HTTP threads write those responses (connections close after them) */
    for (int waited = 0; atomic_load(&s->active) > 0 && waited < STOP_GRACE_MS; waited += 5)
        sleep_ms(5);
    /* 5. a last moment for keep-alive clients to learn that we are closing */
    for (int waited = 0; atomic_load(&s->conns) > 0 && waited < STOP_LINGER_MS; waited += 5)
        sleep_ms(5);
    /* every suspended request has been resumed by step 3, so stopping is
     * legal even if some client is still slowly sending a body */
    workers_free(s);
    return FERRY_OK;
}

void ferry_server_destroy(ferry_server *s)
{
    if (!s)
        return;
    if (s->started)
        ferry_server_stop(s);
    srv_repo_free(s->repo);
    for (int i = 0; i < s->n_models; i++)
        srv_model_free(s->models[i]);
    free(s->models);
    pthread_rwlock_destroy(&s->models_lock);
    free(s->host);
    free(s);
}
