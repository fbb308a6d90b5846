/*
 * serve.c - `ferry serve`: load models, compile an engine and start a batcher
 * for each, serve them over HTTP (KServe v2), stop gracefully on SIGINT or
 * SIGTERM.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "ferry.h"
#include "util/error.h"
#include "util/log.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ferry serve MODEL.onnx [options]\n"
            "       ferry serve --model NAME=PATH [--model NAME=PATH ...] [options]\n"
            "       ferry serve --model-repository DIR [options]\n"
            "\n"
            "Serves ONNX models over HTTP with the KServe v2 / Open Inference Protocol\n"
            "(the protocol of Triton, KServe, Seldon and OpenVINO servers), so their\n"
            "clients work unchanged. Every model gets its own engine and dynamic batcher:\n"
            "concurrent requests of one or a few samples are grouped into batches of up\n"
            "to --max-batch samples, waiting at most --max-delay-us for a batch to fill.\n"
            "\n"
            "models:\n"
            "  MODEL.onnx               serve one model, named after the file (or --name)\n"
            "  --name NAME              the name of MODEL.onnx in URLs\n"
            "  --model NAME=PATH        serve PATH as NAME, version 1 (repeatable)\n"
            "  --model-repository DIR   Triton's layout: DIR/NAME/VERSION/model.onnx, VERSION\n"
            "                           a number, and DIR/NAME/config.pbtxt (optional): the\n"
            "                           highest version is served unless its version_policy\n"
            "                           says otherwise; a URL without a version gets the\n"
            "                           highest served. A model that fails to load is\n"
            "                           reported and the others are served\n"
            "  --model-control-mode M   none (default): load every model at start;\n"
            "                           explicit: load --load-model names at start, then\n"
            "                           POST /v2/repository/models/NAME/load and /unload;\n"
            "                           poll: load every model, rescan the repository every\n"
            "                           --repository-poll-secs and reload what changed\n"
            "  --load-model NAME        explicit mode: load NAME at start (repeatable)\n"
            "  --repository-poll-secs S poll mode: seconds between scans (default 15)\n"
            "\n"
            "HTTP:\n"
            "  --host HOST              address to listen on (default 127.0.0.1; 0.0.0.0 for\n"
            "                           every interface)\n"
            "  --port N                 default 8000; 0 picks a free port (printed)\n"
            "  --threads N              HTTP threads (default: one per core this process may\n"
            "                           use)\n"
            "  --max-body BYTES         larger request bodies get 413 (default 64 MiB)\n"
            "  --connection-timeout S   close a connection that sends nothing for S seconds\n"
            "                           (default 30; 0: never); a request waiting for its\n"
            "                           batch is not idle\n"
            "  --convert-datatypes      accept inputs in any numeric datatype and convert them\n"
            "                           to the model's (range-checked); by default a datatype\n"
            "                           other than the model metadata's is refused (400), as\n"
            "                           Triton does\n"
            "\n"
            "engine and batcher (each model):\n"
            "  --device DEV             cpu (default), cuda, cuda:N; several GPUs: cuda:all or\n"
            "                           a list cuda:0,cuda:2 (a compiled model and --workers\n"
            "                           per GPU; each batch to the GPU that frees up first)\n"
            "  --workers N              engine threads (CPU) or streams (CUDA); default 1 on\n"
            "                           the CPU (its backend spreads each GEMM over the\n"
            "                           cores, so batches grow larger) and 4 streams on CUDA;\n"
            "                           on the CPU each GEMM runs on one thread unless\n"
            "                           FERRY_CPU_THREADS says otherwise\n"
            "  --precision P            fp32 (default), tf32, fp16, bf16\n"
            "  --max-batch N            most samples in one batch (default 256)\n"
            "  --max-delay-us N         longest the first request of a batch waits (default 500)\n"
            "  --preferred-batch N[,N]  batch sizes worth waiting for (up to --max-delay-us):\n"
            "                           a forming batch leaves when it reaches one, instead of\n"
            "                           as soon as the device is idle; larger batches cost less\n"
            "                           per sample under load (default: none)\n"
            "  --max-queue N            queued requests beyond which requests get 503\n"
            "                           (default 65536)\n"
            "  --timeout-us N           default request deadline; late requests get 504\n"
            "                           (default 0: none; a request may set its own:\n"
            "                           \"parameters\":{\"timeout\":US})\n"
            "  --priority-levels N      priority levels, 1..8 (default 1): a request's\n"
            "                           \"parameters\":{\"priority\":K} puts it at level K, 1 the\n"
            "                           highest; batches take the highest levels' requests first;\n"
            "                           K = 0 or none: the default level; K > N: 400\n"
            "  --default-priority-level K  the level of requests without one (default N, the\n"
            "                           lowest)\n"
            "\n"
            "sequence models (inputs with a second dynamic axis, e.g. dynamic_axes\n"
            "{'input_ids': {0: 'batch', 1: 'sequence'}}): requests of any length up to the\n"
            "longest bucket are padded to the smallest length bucket that holds them (the\n"
            "attention mask 0 on the padding) and batched with that bucket's requests;\n"
            "per-token outputs come back at the request's own length:\n"
            "  --length-buckets L[,L]   ascending lengths (default 16,24,32,48,64,96,128,...,\n"
            "                           512, up to the longest the model takes)\n"
            "  --length-axis NAME       the axis' name in the export (default: the inputs'\n"
            "                           one symbolic axis besides the batch)\n"
            "  --mask-input NAME        the attention mask (default: attention_mask or mask)\n"
            "  --pad                    pad a model that has no mask input (its results change)\n"
            "\n"
            "logs (stderr):\n"
            "  --log-level L            error, warn, info (default) or verbose: error shows\n"
            "                           requests the engine failed; warn every failed infer\n"
            "                           request (model, status, reason); info the start-up\n"
            "                           summary (models, devices, settings) and, with\n"
            "                           --access-log, a line a request; verbose every request,\n"
            "                           and error messages with their source locations\n"
            "  --access-log             a line a request: client, method, path, status, bytes,\n"
            "                           milliseconds\n"
            "\n"
            "endpoints:\n"
            "  GET  /v2/health/live, /v2/health/ready, /v2 (server metadata)\n"
            "  GET  /v2/models/NAME[/versions/V]        model metadata\n"
            "  GET  /v2/models/NAME[/versions/V]/ready\n"
            "  POST /v2/models/NAME[/versions/V]/infer  JSON, or Triton's binary tensor data\n"
            "  GET  /metrics                            Prometheus, Triton's metric names\n"
            "  POST /v2/repository/index                the repository's models and states\n"
            "  POST /v2/repository/models/NAME/load     (re)load NAME (explicit mode); a\n"
            "  POST /v2/repository/models/NAME/unload   reload or unload refuses no request:\n"
            "                                           those accepted are answered\n"
            "\n"
            "example (from the repository root, after `make`):\n"
            "  ./build/ferry serve build/models/mlp-s.onnx --port 8000 &\n"
            "  curl -s localhost:8000/v2/health/ready -o /dev/null -w '%%{http_code}\\n'\n"
            "  python3 -c 'import json; print(json.dumps({\"inputs\": [{\"name\": \"input\",\n"
            "      \"datatype\": \"FP32\", \"shape\": [1, 256], \"data\": [0.5] * 256}]}))' |\n"
            "    curl -s localhost:8000/v2/models/mlp-s/infer -d @-; echo\n"
            "  kill %%1\n"
            "\n"
            "SIGINT or SIGTERM stops accepting connections, answers every request already\n"
            "accepted, and exits 0; while models are still loading, it exits at once.\n");
}

typedef struct model_spec {
    char *name, *version, *path;
} model_spec;

typedef struct serve_opts {
    model_spec *models;
    int n_models, cap;
    ferry_server_config srv;
    ferry_engine_config eng;
    ferry_batcher_config bat;
    ferry_model_options mo;
    int64_t lengths[64];
} serve_opts;

static int add_spec(serve_opts *o, const char *name, const char *version, const char *path)
{
    if (o->n_models == o->cap) {
        int cap = o->cap ? 2 * o->cap : 4;
        model_spec *nm = realloc(o->models, (size_t)cap * sizeof *nm);
        if (!nm)
            return -1;
        o->models = nm;
        o->cap = cap;
    }
    model_spec *m = &o->models[o->n_models];
    m->name = strdup(name);
    m->version = strdup(version);
    m->path = strdup(path);
    if (!m->name || !m->version || !m->path) {
        free(m->name);
        free(m->version);
        free(m->path);
        return -1;
    }
    o->n_models++;
    return 0;
}

/* Model name from a path: the file name without directory and ".onnx". */
static void name_from_path(const char *path, char *out, size_t len)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(out, len, "%s", b);
    size_t n = strlen(out);
    if (n > 5 && !strcmp(out + n - 5, ".onnx"))
        out[n - 5] = '\0';
}

/* The repository's messages (loads, unloads, failures, fields of
 * config.pbtxt not applied) in the server's log. */
static void repo_log(void *user, int level, const char *msg)
{
    const ferry_log_level *threshold = user;
    ferry_log(*threshold,
              level == 0   ? FERRY_LOG_ERROR
              : level == 1 ? FERRY_LOG_WARN
                           : FERRY_LOG_INFO,
              "%s", msg);
}

static bool parse_long(const char *opt, const char *v, long long lo, long long hi, long long *out)
{
    return cli_parse_int("ferry serve", opt, v, lo, hi, out) == 0;
}

/* A library message as the log level wants it: source locations (which
 * CUDA errors carry) only for verbose. */
static const char *user_message(const serve_opts *o, char *buf, size_t len)
{
    if (o->srv.log_level >= FERRY_LOG_VERBOSE)
        return ferry_last_error();
    ferry_error_for_users(ferry_last_error(), buf, len);
    return buf;
}

/* One line for a model: what it takes and gives, where and how it runs. */
static void log_model(const serve_opts *o, const model_spec *ms, ferry_model *m, ferry_engine *e)
{
    char io[1024];
    size_t n = 0;
    for (int out = 0; out < 2; out++) {
        int k = out ? ferry_model_num_outputs(m) : ferry_model_num_inputs(m);
        n += (size_t)snprintf(io + n, sizeof io - n, "%s", out ? "; out" : "in");
        for (int i = 0; i < k && n < sizeof io; i++) {
            ferry_tensor_info ti;
            if ((out ? ferry_model_output(m, i, &ti) : ferry_model_input(m, i, &ti)) != FERRY_OK)
                continue;
            char shape[128];
            cli_shape_str(shape, sizeof shape, ti.ndim, ti.shape);
            n += (size_t)snprintf(io + n, sizeof io - n, " %s %s %s", ti.name,
                                  ferry_dtype_name(ti.dtype), shape);
        }
        if (n >= sizeof io) /* cut short */
            n = sizeof io - 1;
    }
    const ferry_engine_config *ec = ferry_engine_get_config(e);
    ferry_log(o->srv.log_level, FERRY_LOG_INFO,
              "model %s version %s (%s): %s; on %s, %d worker%s, %s, max batch %d", ms->name,
              ms->version, ms->path, io, ferry_engine_device(e), ec->workers,
              ec->workers == 1 ? "" : "s", cli_precision_name(ec->precision), ec->max_batch);
}

/* The settings every model shares and the devices this build sees. */
static void log_settings(const serve_opts *o)
{
    ferry_log_level lvl = o->srv.log_level;
    const ferry_batcher_config *b = &o->bat;
    char pref[96] = "none";
    for (int i = 0, n = 0; i < b->n_preferred; i++)
        n += snprintf(pref + n, sizeof pref - (size_t)n, "%s%d", i ? "," : "",
                      b->preferred_batch_sizes[i]);
    char timeout[32] = "none";
    if (b->default_timeout_us > 0)
        snprintf(timeout, sizeof timeout, "%lld us", (long long)b->default_timeout_us);
    ferry_log(lvl, FERRY_LOG_INFO,
              "ferry %s: batcher max delay %lld us, preferred batch %s, max queue %d, timeout "
              "%s, %d priority level%s (default %d); HTTP threads %d, max body %zu bytes, "
              "connection timeout %d s; datatype conversion %s; log level %s%s",
              ferry_version(), (long long)b->max_delay_us, pref, b->max_queue, timeout,
              b->priority_levels, b->priority_levels == 1 ? "" : "s",
              b->priority_levels - b->default_priority, o->srv.threads, o->srv.max_body,
              o->srv.connection_timeout < 0 ? 0 : o->srv.connection_timeout,
              o->srv.convert_datatypes ? "on" : "off",
              (const char *[]){"off", "error", "warn", "info", "verbose"}[o->srv.log_level],
              o->srv.access_log ? ", access log on" : "");
    char dev[2048];
    ferry_backends_describe(dev, sizeof dev);
    for (char *line = dev, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        ferry_log(lvl, FERRY_LOG_INFO, "devices: %s", line);
    }
}

/* Loads one model and builds its engine and batcher, then hands all three
 * to the server. */
static int serve_model(ferry_server *srv, const serve_opts *o, const model_spec *ms)
{
    ferry_model *m = NULL;
    ferry_engine *e = NULL;
    ferry_batcher *b = NULL;
    ferry_engine_config ec = o->eng;
    int on_cpu = strncmp(ec.device ? ec.device : "cpu", "cuda", 4) != 0;
    if (ec.workers == 0) /* measured best for serving: BENCHMARKS.md, batcher */
        ec.workers = on_cpu ? 1 : 4;

    ferry_status st = ferry_model_load_opts(ms->path, &o->mo, &m);
    if (st == FERRY_OK)
        st = ferry_engine_create(m, &ec, &e);
    if (st == FERRY_OK)
        st = ferry_engine_warmup(e);
    if (st == FERRY_OK)
        st = ferry_batcher_create(e, &o->bat, &b);
    if (st == FERRY_OK)
        log_model(o, ms, m, e);
    if (st == FERRY_OK)
        st = ferry_server_add_model(srv, ms->name, ms->version, m, e, b);
    if (st != FERRY_OK) {
        char msg[1024];
        fprintf(stderr, "ferry serve: model '%s' (%s): %s: %s\n", ms->name, ms->path,
                ferry_status_str(st), user_message(o, msg, sizeof msg));
        ferry_batcher_destroy(b);
        ferry_engine_destroy(e);
        ferry_model_destroy(m);
        return -1;
    }
    return 0;
}

static int stop_pipe[2] = {-1, -1};
static volatile sig_atomic_t stop_signal;
/* Set just before the server starts: from then on a signal stops it
 * gracefully. */
static volatile sig_atomic_t serving;

/* Async-signal-safe: records the signal and wakes main. Before the server
 * starts there is no request to answer, and main is busy loading models
 * (which a slow or stuck file can make last), so the signal ends the
 * process at once, with the signal's own exit status. */
static void on_stop_signal(int sig)
{
    if (!serving) {
        static const char msg[] = "ferry serve: signal while loading models: exiting\n";
        if (write(2, msg, sizeof msg - 1) < 0) {
            /* nothing to do about it here */
        }
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    int saved = errno;
    char c = (char)sig;
    stop_signal = sig;
    if (write(stop_pipe[1], &c, 1) < 0) {
        /* the pipe is full: main is already awake */
    }
    errno = saved;
}

int cmd_serve(int argc, char **argv)
{
    serve_opts o = {0};
    ferry_server_config_init(&o.srv);
    o.srv.log_level = FERRY_LOG_INFO;
    ferry_engine_config_init(&o.eng);
    ferry_batcher_config_init(&o.bat);
    ferry_model_options_init(&o.mo);
    const char *single = NULL, *name = NULL, *repo = NULL;
    ferry_repository_config rc_repo;
    ferry_repository_config_init(&rc_repo);
    const char **load_names = NULL;
    bool mode_set = false;
    int rc = 2;
    bool max_batch_set = false;
    long long max_batch = 0, default_level = 0;
    ferry_server *srv = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            rc = 0;
            goto done;
        }
        if (a[0] != '-') {
            if (single) {
                fprintf(stderr, "ferry serve: one MODEL.onnx; use --model NAME=PATH for more\n");
                goto done;
            }
            single = a;
            continue;
        }
        if (!strcmp(a, "--convert-datatypes")) { /* the flags without a value */
            o.srv.convert_datatypes = 1;
            continue;
        }
        if (!strcmp(a, "--access-log")) {
            o.srv.access_log = 1;
            continue;
        }
        if (!strcmp(a, "--pad")) {
            o.bat.pad = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "ferry serve: %s needs a value (see ferry serve --help)\n", a);
            goto done;
        }
        const char *v = argv[++i];
        long long x;
        if (!strcmp(a, "--name")) {
            name = v;
        } else if (!strcmp(a, "--model")) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || !eq[1]) {
                fprintf(stderr, "ferry serve: --model wants NAME=PATH, got '%s'\n", v);
                goto done;
            }
            char nm[256];
            snprintf(nm, sizeof nm, "%.*s", (int)(eq - v), v);
            if (add_spec(&o, nm, "1", eq + 1) != 0)
                goto oom;
        } else if (!strcmp(a, "--model-repository")) {
            repo = v;
        } else if (!strcmp(a, "--model-control-mode")) {
            mode_set = true;
            if (!strcmp(v, "none")) {
                rc_repo.control = FERRY_MODEL_CONTROL_NONE;
            } else if (!strcmp(v, "explicit")) {
                rc_repo.control = FERRY_MODEL_CONTROL_EXPLICIT;
            } else if (!strcmp(v, "poll")) {
                rc_repo.control = FERRY_MODEL_CONTROL_POLL;
            } else {
                fprintf(stderr,
                        "ferry serve: --model-control-mode wants none, explicit or poll, got "
                        "'%s'\n",
                        v);
                goto done;
            }
        } else if (!strcmp(a, "--load-model")) {
            const char **nl = realloc(load_names, (size_t)(rc_repo.n_load + 1) * sizeof *nl);
            if (!nl)
                goto oom;
            load_names = nl;
            load_names[rc_repo.n_load++] = v;
            rc_repo.load = load_names;
        } else if (!strcmp(a, "--repository-poll-secs")) {
            if (!parse_long(a, v, 1, 86400, &x))
                goto done;
            rc_repo.poll_secs = (int)x;
        } else if (!strcmp(a, "--host")) {
            o.srv.host = v;
        } else if (!strcmp(a, "--port")) {
            if (!parse_long(a, v, 0, 65535, &x))
                goto done;
            o.srv.port = (int)x;
        } else if (!strcmp(a, "--threads")) {
            if (!parse_long(a, v, 1, 1024, &x))
                goto done;
            o.srv.threads = (int)x;
        } else if (!strcmp(a, "--max-body")) {
            if (!parse_long(a, v, 1, (long long)1 << 40, &x))
                goto done;
            o.srv.max_body = (size_t)x;
        } else if (!strcmp(a, "--connection-timeout")) {
            if (!parse_long(a, v, 0, 86400, &x))
                goto done;
            o.srv.connection_timeout = x ? (int)x : -1; /* the API's 0 is the default */
        } else if (!strcmp(a, "--log-level")) {
            static const char *const names[] = {"error", "warn", "info", "verbose"};
            int k = 0;
            while (k < 4 && strcmp(v, names[k]))
                k++;
            if (k == 4) {
                fprintf(stderr,
                        "ferry serve: --log-level wants error, warn, info or verbose, "
                        "got '%s'\n",
                        v);
                goto done;
            }
            o.srv.log_level = (ferry_log_level)(FERRY_LOG_ERROR + k);
        } else if (!strcmp(a, "--device")) {
            o.eng.device = v;
        } else if (!strcmp(a, "--workers")) {
            if (!parse_long(a, v, 1, 1024, &x))
                goto done;
            o.eng.workers = (int)x;
        } else if (!strcmp(a, "--precision")) {
            if (cli_parse_precision(v, &o.eng.precision) != 0)
                goto done;
        } else if (!strcmp(a, "--max-batch")) {
            if (!parse_long(a, v, 1, 1 << 20, &max_batch))
                goto done;
            max_batch_set = true;
        } else if (!strcmp(a, "--max-delay-us")) {
            if (!parse_long(a, v, 0, 60000000, &x))
                goto done;
            o.bat.max_delay_us = x;
        } else if (!strcmp(a, "--preferred-batch")) {
            int64_t sizes[FERRY_MAX_PREFERRED];
            int n = cli_parse_int_list(v, sizes, FERRY_MAX_PREFERRED);
            if (n < 0) {
                fprintf(stderr,
                        "ferry serve: --preferred-batch '%s': expected up to %d positive sizes, "
                        "comma-separated\n",
                        v, FERRY_MAX_PREFERRED);
                goto done;
            }
            for (int k = 0; k < n; k++) {
                if (sizes[k] > (1 << 20)) {
                    fprintf(stderr, "ferry serve: --preferred-batch: %lld is too large\n",
                            (long long)sizes[k]);
                    goto done;
                }
                o.bat.preferred_batch_sizes[k] = (int)sizes[k];
            }
            o.bat.n_preferred = n;
        } else if (!strcmp(a, "--length-buckets")) {
            int n = cli_parse_int_list(v, o.lengths, 64);
            if (n < 1) {
                fprintf(stderr,
                        "ferry serve: --length-buckets '%s': expected up to 64 ascending "
                        "lengths, comma-separated\n",
                        v);
                goto done;
            }
            o.mo.length_buckets = o.lengths;
            o.mo.n_length_buckets = n;
        } else if (!strcmp(a, "--length-axis")) {
            o.mo.length_axis = v;
        } else if (!strcmp(a, "--mask-input")) {
            o.bat.mask_input = v;
        } else if (!strcmp(a, "--max-queue")) {
            if (!parse_long(a, v, 1, 1 << 30, &x))
                goto done;
            o.bat.max_queue = (int)x;
        } else if (!strcmp(a, "--priority-levels")) {
            if (!parse_long(a, v, 1, 8, &x))
                goto done;
            o.bat.priority_levels = (int)x;
        } else if (!strcmp(a, "--default-priority-level")) {
            if (!parse_long(a, v, 1, 8, &default_level))
                goto done;
        } else if (!strcmp(a, "--timeout-us")) {
            if (!parse_long(a, v, 0, (long long)1 << 50, &x))
                goto done;
            o.bat.default_timeout_us = x;
        } else {
            fprintf(stderr, "ferry serve: unknown option '%s' (see ferry serve --help)\n", a);
            goto done;
        }
    }
    /* Triton's levels (1 highest) into the batcher's (0 lowest); requests
     * without a priority get the lowest unless told otherwise */
    if (default_level == 0)
        default_level = o.bat.priority_levels;
    if (default_level > o.bat.priority_levels) {
        fprintf(stderr,
                "ferry serve: --default-priority-level %lld is outside 1..%d (--priority-levels)\n",
                default_level, o.bat.priority_levels);
        goto done;
    }
    o.bat.default_priority = o.bat.priority_levels - (int)default_level;
    if (max_batch_set) {
        o.eng.max_batch = (int)max_batch;
        o.bat.max_batch = (int)max_batch;
    }
    if (single) {
        char nm[256];
        if (name)
            snprintf(nm, sizeof nm, "%s", name);
        else
            name_from_path(single, nm, sizeof nm);
        if (add_spec(&o, nm, "1", single) != 0)
            goto oom;
    } else if (name) {
        fprintf(stderr, "ferry serve: --name names MODEL.onnx, and none was given\n");
        goto done;
    }
    if (!repo && (mode_set || rc_repo.n_load)) {
        fprintf(stderr, "ferry serve: --model-control-mode and --load-model need "
                        "--model-repository DIR\n");
        goto done;
    }
    if (rc_repo.n_load && rc_repo.control != FERRY_MODEL_CONTROL_EXPLICIT) {
        fprintf(stderr, "ferry serve: --load-model is for --model-control-mode explicit (the "
                        "other modes load every model)\n");
        goto done;
    }
    if (o.n_models == 0 && !repo) {
        fprintf(stderr, "ferry serve: no model given\n\n");
        usage(stderr);
        goto done;
    }

    /* A handler, not sigwait: libraries start threads before main (OpenBLAS
     * does), and a SIGTERM delivered to one of those with the signal
     * unblocked would kill the process instead of stopping it. The handler
     * runs on whichever thread gets the signal and wakes main through a pipe. */
    if (pipe(stop_pipe) != 0) {
        fprintf(stderr, "ferry serve: pipe: %s\n", strerror(errno));
        goto done;
    }
    /* No SA_RESTART: main's read of the pipe must return (EINTR) when the
     * signal lands on main, or a sanitizer runtime, which runs handlers
     * only when the thread comes back from the call, never runs it (under
     * TSan `ferry serve` ignored SIGTERM). Ferry's own threads block these
     * signals (util/thread.h), so main is where they land, unless a
     * library thread started before main takes them. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = 0;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* a connection is a descriptor: allow as many as the hard limit does */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    rc = 1;
    /* Serving batches are small and the HTTP threads already keep the cores
     * busy: the CPU backend's GEMM helper threads would only compete with
     * them (BENCHMARKS.md, server). FERRY_CPU_THREADS set by the user wins.
     * Set before Ferry starts threads: setenv is not thread-safe. */
    if (strncmp(o.eng.device ? o.eng.device : "cpu", "cuda", 4) != 0)
        setenv("FERRY_CPU_THREADS", "1", 0);
    ferry_status st = ferry_server_create(&o.srv, &srv);
    if (st != FERRY_OK) {
        fprintf(stderr, "ferry serve: %s\n", ferry_last_error());
        goto done;
    }
    for (int i = 0; i < o.n_models; i++)
        if (serve_model(srv, &o, &o.models[i]) != 0)
            goto done;
    if (repo) {
        rc_repo.path = repo;
        rc_repo.engine = o.eng;
        if (rc_repo.engine.workers == 0) /* as serve_model: BENCHMARKS.md, batcher */
            rc_repo.engine.workers =
                strncmp(o.eng.device ? o.eng.device : "cpu", "cuda", 4) != 0 ? 1 : 4;
        rc_repo.batcher = o.bat;
        rc_repo.model_options = &o.mo;
        rc_repo.log = repo_log;
        rc_repo.log_user = &o.srv.log_level;
        st = ferry_server_set_repository(srv, &rc_repo);
        if (st != FERRY_OK) {
            fprintf(stderr, "ferry serve: %s\n", ferry_last_error());
            goto done;
        }
    }
    /* a signal from here on is read from the pipe once the server runs */
    serving = 1;
    st = ferry_server_start(srv);
    if (st != FERRY_OK) {
        fprintf(stderr, "ferry serve: %s\n", ferry_last_error());
        goto done;
    }
    int port = ferry_server_port(srv);
    bool v6 = strchr(o.srv.host, ':') != NULL;
    log_settings(&o);
    for (int i = 0; i < o.n_models; i++)
        ferry_log(o.srv.log_level, FERRY_LOG_INFO, "serving %s at http://%s%s%s:%d (version %s)",
                  o.models[i].name, v6 ? "[" : "", o.srv.host, v6 ? "]" : "", port,
                  o.models[i].version);
    /* at every level, as it is: scripts wait for this line */
    fprintf(stderr, "listening on port %d\n", port);
    fflush(stderr);

    char sigc = 0;
    while (read(stop_pipe[0], &sigc, 1) < 0 && errno == EINTR)
        ;
    int sig = stop_signal;
    ferry_log(o.srv.log_level, FERRY_LOG_INFO, "%s: stopping (answering accepted requests)",
              sig == SIGINT ? "SIGINT" : "SIGTERM");
    st = ferry_server_stop(srv);
    if (st != FERRY_OK) {
        fprintf(stderr, "ferry serve: stop: %s\n", ferry_last_error());
        goto done;
    }
    ferry_log(o.srv.log_level, FERRY_LOG_INFO, "stopped");
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "ferry serve: out of memory\n");
    rc = 1;
done:
    ferry_server_destroy(srv);
    for (int i = 0; i < o.n_models; i++) {
        free(o.models[i].name);
        free(o.models[i].version);
        free(o.models[i].path);
    }
    free(o.models);
    free(load_names);
    return rc;
}
