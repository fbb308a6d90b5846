/*
 * server.h - internals of the KServe v2 HTTP server shared by its files:
 * server.c (lifecycle, MHD wiring, routing), kserve.c (the infer request and
 * the metadata documents), metrics.c (Prometheus text).
 */
#ifndef FERRY_SERVER_SERVER_H
#define FERRY_SERVER_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "ferry.h"
#include "server/jsonw.h"

/* How an infer request ended, for nv_inference_request_success and the
 * reason label of nv_inference_request_failure (Triton's reasons:
 * REJECTED, refused or expired before it ran, queue full, shutting down;
 * CANCELED, never here: a request whose client left still runs; BACKEND,
 * the engine failed; OTHER, a bad request). */
typedef enum srv_outcome {
    SRV_SUCCESS,
    SRV_REJECTED,
    SRV_CANCELED,
    SRV_BACKEND,
    SRV_OTHER,
    SRV_OUTCOMES
} srv_outcome;

/* The outcome of a request that got status st from the batcher. */
srv_outcome srv_outcome_of(ferry_status st);
/* "SUCCESS", or Triton's failure reason: "REJECTED", "CANCELED", ... */
const char *srv_outcome_name(srv_outcome how);

/* One served (name, version): owns its model, engine and batcher. */
typedef struct srv_model {
    char *name;
    char *version;
    ferry_model *model;
    ferry_engine *engine;
    ferry_batcher *batcher; /* NULL once drained at stop */
    int n_in, n_out;
    ferry_tensor_info *in, *out;
    int64_t *in_sample_numel; /* elements of one sample (batch dimension dropped) */
    int64_t *out_sample_numel;
    int64_t max_batch; /* the engine's: no request may be larger, checked before allocating */
    /* the batcher's priority levels and the level of requests that name
     * none, in the batcher's terms (0 lowest); kserve.c maps Triton's */
    int prio_levels, prio_default;
    /* Infer requests that succeeded / failed, each counted once, when its
     * outcome is decided: the batcher's result, a refusal at submit, or an
     * error answered at once. Not when the answer is written: a client
     * that has gone by then is never answered, and its request still
     * counts, as it does in the batcher's statistics. */
    atomic_uint_fast64_t n_outcome[SRV_OUTCOMES];
    /* References: the model table's while the entry is in it, and one per
     * request routed to it, until the request is freed. An entry taken
     * out of the table (unload, reload: repo.c) is retired: its batcher
     * keeps answering the requests that hold it, and repo.c frees it when
     * the table's reference is the last. */
    atomic_int refs;
    atomic_bool retired;
    bool from_repo;                 /* loaded by repo.c (may be unloaded, reloaded) */
    struct srv_model *next_retired; /* repo.c's list of retired entries */
} srv_model;

typedef struct srv_repo srv_repo;

/* One HTTP thread and the MHD daemon it runs (loop.c). */
typedef struct srv_worker {
    ferry_server *srv;
    struct MHD_Daemon *mhd;
    int ep;   /* what the thread waits on: MHD's epoll fd, wake, client FINs */
    int wake; /* eventfd: a resumed request or a stop (see loop.c) */
    pthread_t thread;
    bool running;
    bool quiesced; /* its thread only */
} srv_worker;

/* A client connection as its HTTP thread watches it for a FIN (loop.c);
 * MHD's socket context of the connection. */
typedef struct srv_conn {
    struct MHD_Connection *conn;
    int fd;
    bool watched; /* in the thread's epoll set, for EPOLLRDHUP */
} srv_conn;

/* What stop asks of the HTTP threads, in order. */
enum { SRV_RUN = 0, SRV_QUIESCE = 1, SRV_EXIT = 2 };

struct ferry_server {
    ferry_server_config cfg;
    char *host;
    /* The model table. HTTP threads look entries up (and take a reference)
     * under the read lock; repo.c's thread changes the table under the
     * write lock. Without a repository it never changes after start. */
    pthread_rwlock_t models_lock;
    srv_model **models;
    int n_models, cap_models;
    srv_repo *repo; /* NULL: no model repository */
    srv_worker *workers;
    int n_workers;
    atomic_int phase;      /* SRV_*: set by stop, read by the HTTP threads */
    atomic_int n_quiesced; /* threads that no longer accept */
    int listen_fd;
    int port;
    _Atomic bool started; /* read by the HTTP threads (server_ready) */
    bool stopped;
    /* Stop protocol: a handler announces itself in in_submit before it
     * checks stopping, so that once stop has set stopping and seen
     * in_submit at zero no handler can reach a batcher being destroyed. */
    atomic_int stopping;
    atomic_int in_submit;
    atomic_long active; /* requests begun and not yet completed by MHD */
    atomic_long conns;  /* open client connections */
};

/* The route of a request, found from its method and URL at the first call. */
typedef enum srv_route {
    ROUTE_NONE = 0, /* an error response is already decided */
    ROUTE_LIVE,
    ROUTE_READY,
    ROUTE_SERVER_META,
    ROUTE_MODEL_META,
    ROUTE_MODEL_READY,
    ROUTE_INFER,
    ROUTE_METRICS,
    ROUTE_REPO_INDEX,  /* POST /v2/repository/index */
    ROUTE_REPO_LOAD,   /* POST /v2/repository/models/NAME/load */
    ROUTE_REPO_UNLOAD, /* POST /v2/repository/models/NAME/unload */
} srv_route;

/* The outputs a request asked for, in the order asked. */
typedef struct srv_out_sel {
    int index;   /* model output index */
    bool binary; /* reply as binary data after the JSON header */
} srv_out_sel;

/* One HTTP request's state, from the first handler call to MHD's completion
 * notice (kept as MHD's per-request context). */
typedef struct srv_request {
    ferry_server *srv;
    srv_worker *worker; /* the thread that owns the connection */
    struct MHD_Connection *conn;
    srv_route route;
    srv_model *model;
    unsigned err_status; /* != 0: reply with this status and err_msg */
    char err_msg[512];
    /* body */
    char *body;
    size_t len, cap;
    size_t expect; /* Content-Length, when given (within max_body) */
    size_t seen;   /* body bytes received, kept or not */
    bool body_too_big;
    bool close;           /* reply with Connection: close (the framing is not to be trusted) */
    long long header_len; /* Inference-Header-Content-Length; -1 if absent */
    /* infer, between submit and the resumed handler call */
    bool counted;        /* in the model's n_outcome (once) */
    srv_outcome outcome; /* once counted */
    /* for the log: when it began, what it asked (cut short past the room) */
    int64_t t_start;
    char method[8], path[160];
    bool submitted;
    ferry_status status; /* written by the batcher thread before resume */
    int64_t batch;       /* samples in the request */
    void *out_mem;       /* one block: outputs, sel, then the output data */
    ferry_tensor *outputs;
    int n_sel;
    srv_out_sel *sel;
    char *id;    /* "id" of the request, echoed; NULL if none */
    size_t id_n; /* its length: it may hold NULs (from \u0000) */
    /* repository load/unload: the model named, and whether the repository
     * thread has taken the job (and resumes the connection when done) */
    char *repo_name;
    bool repo_queued;
} srv_request;

/* kserve.c */
/* Parses the body of an infer request and submits it to the model's batcher
 * (the connection is suspended first; the batcher callback resumes it).
 * On a request error fills r->err_status/err_msg and returns false, with
 * nothing submitted and the connection not suspended. */
bool kserve_submit(srv_request *r);
/* Builds the response of a completed infer request into w, with its status,
 * whether the body carries binary data (and the JSON part's length). */
void kserve_infer_response(srv_request *r, jsonw *w, unsigned *status, size_t *json_len,
                           bool *binary);
void kserve_server_metadata(ferry_server *s, jsonw *w);
void kserve_model_metadata(ferry_server *s, srv_model *m, jsonw *w);
const char *kserve_dtype_name(ferry_dtype dt);

/* metrics.c */
void metrics_write(ferry_server *s, jsonw *w);

/* gpu_metrics.c */
/* Triton's per-GPU gauges, when NVML (the driver's libnvidia-ml.so.1) finds
 * GPUs; nothing otherwise. */
void gpu_metrics_write(jsonw *w);

/* server.c */
void srv_request_release_infer(srv_request *r);
/* Counts r (an infer request; others are not counted) with its outcome,
 * unless it is counted already. */
void srv_request_count(srv_request *r, srv_outcome how);
/* Resumes r's suspended connection and wakes its thread. From any thread;
 * r may be freed by that thread as soon as this returns. */
void srv_request_resume(srv_request *r);

/* server.c: the model table */
/* A table entry for a loaded model, engine and batcher (owned on success,
 * left to the caller on failure), with one reference, not yet in a table. */
ferry_status srv_model_new(const char *name, const char *version, ferry_model *mdl, ferry_engine *e,
                           ferry_batcher *b, srv_model **out);
void srv_model_free(srv_model *m);
/* The entry serving (name, version) (version NULL: the highest), with a
 * reference taken for the caller; NULL if none. Any thread. */
srv_model *srv_model_get(ferry_server *s, const char *name, const char *version);
/* Drops a reference taken by srv_model_get. Any thread. */
void srv_model_put(ferry_server *s, srv_model *m);
/* Replaces every entry named name by add[0..n_add) (which the table then
 * owns), atomically for readers. The entries taken out, marked retired,
 * go to *old (a list through next_retired, still holding the table's
 * reference). Fails, changing nothing, when an entry of that name is not
 * from the repository. */
ferry_status srv_models_swap(ferry_server *s, const char *name, srv_model **add, int n_add,
                             srv_model **old);

/* repo.c */
/* Answers a repository request now (true: *status and w are the reply; an
 * error is in r->err_status/err_msg), or queues it for the repository
 * thread, which resumes the connection when done (false). */
bool srv_repo_request(srv_request *r, jsonw *w, unsigned *status);
/* Why a model is not served, for a 404 ("model 'x' is not loaded: ..."),
 * into buf; false when the repository knows nothing of it. */
bool srv_repo_absent(srv_repo *p, const char *name, char *buf, size_t n);
/* Wakes the repository thread: a retired entry may be free to go. */
void srv_repo_kick(srv_repo *p);
ferry_status srv_repo_start(srv_repo *p);
/* Stops the repository thread; queued requests are answered 503. */
void srv_repo_stop(srv_repo *p);
/* Drains the batchers of retired entries (at server stop). */
void srv_repo_drain(srv_repo *p);
void srv_repo_free(srv_repo *p);
/* Whether the server may start with no model (explicit or poll mode). */
bool srv_repo_may_start_empty(const srv_repo *p);

/* loop.c */
/* Makes w's descriptors (before its daemon starts: MHD's notices use them). */
ferry_status srv_worker_init(srv_worker *w);
/* Starts w's thread on its daemon (w->srv and w->mhd set). */
ferry_status srv_worker_start(srv_worker *w);
/* Wakes w's thread: it runs its daemon and looks at the server's phase. */
void srv_worker_wake(srv_worker *w);
/* Wakes and joins w's thread (the server's phase is SRV_EXIT). */
void srv_worker_join(srv_worker *w);
/* Closes w's descriptors (its daemon stopped). */
void srv_worker_free(srv_worker *w);
/* MHD's connection notices, on w's thread: watch a new connection for its
 * client's FIN; forget a closed one. */
void srv_conn_open(srv_worker *w, struct MHD_Connection *conn, void **socket_ctx);
void srv_conn_close(srv_worker *w, void *socket_ctx);

#endif
