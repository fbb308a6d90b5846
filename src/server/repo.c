/*
 * repo.c - the model repository: Triton's layout (DIR/NAME/config.pbtxt,
 * DIR/NAME/VERSION/model.onnx), its version policies (model_config.c), and
 * the repository extension (POST /v2/repository/index, .../models/NAME/load
 * and /unload) under the model control modes none, explicit and poll.
 *
 * Threads. Loading a model (file, engine, warm-up, batcher) takes
 * milliseconds to seconds, so it never runs on an HTTP thread: a load or
 * unload request is queued to the repository's own thread and its
 * connection suspended; the thread resumes it when done, as a batcher does
 * an infer request. The same thread rescans the repository in poll mode
 * and frees retired table entries. The index is answered on the HTTP
 * thread, from the entries below (mu) and the server's table (read lock).
 *
 * Swapping without refusing. A (re)load builds every selected version
 * first, beside what serves now, then swaps the new entries into the table
 * under its write lock (srv_models_swap): a request routed before the swap
 * holds the old entry, whose batcher stays alive and answers it; one routed
 * after gets the new. An unload is a swap with nothing. The entries taken
 * out are retired; this thread frees each once the table's reference,
 * which it keeps, is the last (no request holds it, and none can take it).
 * A failed reload leaves the old versions serving.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server/model_config.h"
#include "server/server.h"
#include "util/error.h"
#include "util/thread.h"

/* Messages are cut to their buffers on purpose (a path may be as long as
 * PATH_MAX; a reason has 600 bytes); the paths that are opened are checked
 * for length where they are made. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

/* config.pbtxt larger than this is refused (a real one is a few KiB). */
#define CONFIG_MAX (1 << 20)
/* How often retired entries are looked at while some wait (a request
 * letting go of one usually wakes the thread at once: srv_repo_kick). */
#define REAP_MS 20

typedef struct repo_entry {
    char name[256];
    bool tried;       /* a load or unload happened: state and reason mean something */
    char reason[512]; /* why it is not served ("" while it is) */
    bool has_sig;
    uint64_t sig; /* poll: the files as last loaded */
    bool seen;    /* poll: found by the scan under way */
} repo_entry;

typedef enum { JOB_LOAD, JOB_UNLOAD } job_kind;

typedef struct repo_job {
    struct repo_job *next;
    job_kind kind;
    srv_request *r; /* suspended; resumed when done */
} repo_job;

struct srv_repo {
    ferry_server *srv;
    char *dir;
    ferry_model_control mode;
    int poll_secs;
    ferry_engine_config ec;
    char *device;
    ferry_batcher_config bc;
    char *mask_input;        /* bc's, copied */
    ferry_model_options mo;  /* copied: */
    char *length_axis;       /* its strings */
    int64_t *length_buckets; /* and buckets */
    void (*log)(void *user, int level, const char *msg);
    void *log_user;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    repo_job *head, *tail;
    bool stop;
    repo_entry *ents;
    int n_ents, cap_ents;
    /* the thread's (then stop's, once it has joined) */
    srv_model *retired;
    pthread_t thread;
    bool running;
};

static const char *mode_name(ferry_model_control m)
{
    return m == FERRY_MODEL_CONTROL_EXPLICIT ? "explicit"
           : m == FERRY_MODEL_CONTROL_POLL   ? "poll"
                                             : "none";
}

static void say(srv_repo *p, int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->log)
        p->log(p->log_user, level, msg);
    else
        fprintf(stderr, "ferry: %s%s\n",
                level == 0   ? "error: "
                : level == 1 ? "warning: "
                             : "",
                msg);
}

void ferry_repository_config_init(ferry_repository_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->poll_secs = 15;
    ferry_engine_config_init(&cfg->engine);
    ferry_batcher_config_init(&cfg->batcher);
}

/* A model's name as a directory of the repository: not hidden, not a
 * path, not too long. */
static bool good_name(const char *name)
{
    return *name && name[0] != '.' && !strchr(name, '/') && strlen(name) < 256;
}

/* ------------------------------------------------------------ entries */

/* The entry of name (mu held), made if add. */
static repo_entry *entry(srv_repo *p, const char *name, bool add)
{
    for (int i = 0; i < p->n_ents; i++)
        if (!strcmp(p->ents[i].name, name))
            return &p->ents[i];
    if (!add)
        return NULL;
    if (p->n_ents == p->cap_ents) {
        int cap = p->cap_ents ? 2 * p->cap_ents : 8;
        repo_entry *ne = realloc(p->ents, (size_t)cap * sizeof *ne);
        if (!ne)
            return NULL;
        p->ents = ne;
        p->cap_ents = cap;
    }
    repo_entry *e = &p->ents[p->n_ents++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    return e;
}

/* Whether DIR/name is a directory. */
static bool in_repo(srv_repo *p, const char *name)
{
    char mdir[PATH_MAX];
    struct stat st;
    return good_name(name) &&
           snprintf(mdir, sizeof mdir, "%s/%s", p->dir, name) < (int)sizeof mdir &&
           stat(mdir, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Records name's state for the index: a model of the repository, or one
 * it knows already (a name a client made up leaves no entry). */
static void set_state(srv_repo *p, const char *name, const char *reason)
{
    bool add = in_repo(p, name);
    pthread_mutex_lock(&p->mu);
    repo_entry *e = entry(p, name, add);
    if (e) {
        e->tried = true;
        snprintf(e->reason, sizeof e->reason, "%s", reason);
    }
    pthread_mutex_unlock(&p->mu);
}

/* --------------------------------------------------------------- files */

/* Reads a small regular file whole (NUL-terminated). 1: it does not exist;
 * -1: why. Non-blocking open: a FIFO cannot hang the thread. */
static int read_small(const char *path, char **out, size_t *len, char *why, size_t n)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 1;
        snprintf(why, n, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, n, "%s: not a regular file", path);
        goto fail;
    }
    if (st.st_size > CONFIG_MAX) {
        snprintf(why, n, "%s: %lld bytes, more than the %d a config may have", path,
                 (long long)st.st_size, CONFIG_MAX);
        goto fail;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        snprintf(why, n, "%s: out of memory", path);
        goto fail;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            snprintf(why, n, "%s: %s", path, strerror(errno));
            goto fail;
        }
        if (k == 0)
            break; /* shrunk meanwhile: what is there */
        got += (size_t)k;
    }
    buf[got] = '\0';
    close(fd);
    *out = buf;
    *len = got;
    return 0;
fail:
    free(buf);
    close(fd);
    return -1;
}

/* A version directory's name: digits, no leading zero, fits int64. */
static bool version_name(const char *s, int64_t *v)
{
    size_t n = strlen(s);
    if (n == 0 || n > 18 || (s[0] == '0' && n > 1))
        return false;
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return true;
}

static bool is_regular(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The versions of mdir that hold file, ascending, into *out (malloc). */
static int list_versions(const char *mdir, const char *file, int64_t **out)
{
    *out = NULL;
    DIR *d = opendir(mdir);
    if (!d)
        return 0;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t v;
        char path[PATH_MAX];
        if (!version_name(e->d_name, &v) ||
            snprintf(path, sizeof path, "%s/%s/%s", mdir, e->d_name, file) >= (int)sizeof path ||
            !is_regular(path))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            int64_t *nv = realloc(*out, (size_t)cap * sizeof *nv);
            if (!nv)
                break;
            *out = nv;
        }
        (*out)[n++] = v;
    }
    closedir(d);
    if (n)
        qsort(*out, (size_t)n, sizeof **out, cmp_i64);
    return n;
}

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static uint64_t stat_hash(const char *rel, const char *path)
{
    struct stat st;
    uint64_t h = mix(1469598103934665603ull, rel, strlen(rel));
    if (stat(path, &st) != 0)
        return h;
    int64_t f[5] = {(int64_t)st.st_ino, (int64_t)st.st_size, (int64_t)st.st_mtim.tv_sec,
                    (int64_t)st.st_mtim.tv_nsec, (int64_t)st.st_mode};
    return mix(h, f, sizeof f);
}

/* What poll mode compares: config.pbtxt and every file of every version
 * directory (name, inode, size, modification time), in any order. */
static uint64_t model_sig(const char *mdir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/config.pbtxt", mdir);
    uint64_t sig = stat_hash("config.pbtxt", path);
    DIR *d = opendir(mdir);
    if (!d)
        return sig;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t v;
        if (!version_name(e->d_name, &v))
            continue;
        char vdir[PATH_MAX];
        snprintf(vdir, sizeof vdir, "%s/%s", mdir, e->d_name);
        DIR *vd = opendir(vdir);
        if (!vd)
            continue;
        struct dirent *f;
        while ((f = readdir(vd))) {
            if (!strcmp(f->d_name, ".") || !strcmp(f->d_name, ".."))
                continue;
            char rel[600];
            snprintf(rel, sizeof rel, "%s/%s", e->d_name, f->d_name);
            snprintf(path, sizeof path, "%s/%s", vdir, f->d_name);
            sig += stat_hash(rel, path) * 0x9E3779B97F4A7C15ull; /* order-free */
        }
        closedir(vd);
    }
    closedir(d);
    return sig;
}

/* ---------------------------------------------------------------- load */

typedef struct warn_ctx {
    srv_repo *p;
    const char *name, *path;
} warn_ctx;

static void on_ignored(void *user, const char *field, const char *why)
{
    warn_ctx *w = user;
    say(w->p, 1, "model '%s': %s: field '%s': %s", w->name, w->path, field, why);
}

/* One version: model, engine, warm-up, batcher, table entry. */
static bool build_version(const char *name, int64_t v, const char *path,
                          const ferry_model_options *mo, const ferry_engine_config *ec,
                          const ferry_batcher_config *bc, srv_model **out, char *why, size_t n)
{
    ferry_model *m = NULL;
    ferry_engine *e = NULL;
    ferry_batcher *b = NULL;
    char ver[24];
    snprintf(ver, sizeof ver, "%lld", (long long)v);
    ferry_status st = ferry_model_load_opts(path, mo, &m);
    if (st == FERRY_OK)
        st = ferry_engine_create(m, ec, &e);
    if (st == FERRY_OK)
        st = ferry_engine_warmup(e);
    if (st == FERRY_OK)
        st = ferry_batcher_create(e, bc, &b);
    if (st == FERRY_OK)
        st = srv_model_new(name, ver, m, e, b, out);
    if (st != FERRY_OK) {
        snprintf(why, n, "%s: %s: %s", path, ferry_status_str(st), ferry_last_error());
        ferry_batcher_destroy(b);
        ferry_engine_destroy(e);
        ferry_model_destroy(m);
        return false;
    }
    (*out)->from_repo = true;
    return true;
}

static void retire(srv_repo *p, srv_model *old)
{
    while (old) {
        srv_model *next = old->next_retired;
        old->next_retired = p->retired;
        p->retired = old;
        old = next;
    }
}

/* The knobs a model is served with, for the load's log line. */
static void describe_knobs(const ferry_engine_config *ec, const ferry_batcher_config *bc, char *out,
                           size_t n)
{
    char pref[96] = "none", timeout[32] = "none";
    for (int i = 0, k = 0; i < bc->n_preferred && k < (int)sizeof pref; i++)
        k += snprintf(pref + k, sizeof pref - (size_t)k, "%s%d", i ? "," : "",
                      bc->preferred_batch_sizes[i]);
    if (bc->default_timeout_us > 0)
        snprintf(timeout, sizeof timeout, "%lld us", (long long)bc->default_timeout_us);
    snprintf(out, n,
             "max batch %d, max delay %lld us, preferred batch %s, priority levels %d, timeout "
             "%s, max queue %d, workers %d",
             bc->max_batch ? bc->max_batch : ec->max_batch, (long long)bc->max_delay_us, pref,
             bc->priority_levels, timeout, bc->max_queue, ec->workers);
    if (bc->priority_levels > 1) { /* Triton's numbering: 1 the highest */
        size_t k = strlen(out);
        if (k < n)
            snprintf(out + k, n - k, ", default priority level %d",
                     bc->priority_levels - bc->default_priority);
    }
}

/* Loads (or reloads) every version of name its policy selects and swaps
 * them in; on failure, why, and what served before serves on. loaded: the
 * versions and knobs, for the log. */
static bool load_model(srv_repo *p, const char *name, char *why, size_t n, char *loaded, size_t ln)
{
    char mdir[PATH_MAX], cpath[PATH_MAX];
    struct stat st;
    if (snprintf(mdir, sizeof mdir, "%s/%s", p->dir, name) >= (int)sizeof mdir ||
        snprintf(cpath, sizeof cpath, "%s/config.pbtxt", mdir) >= (int)sizeof cpath) {
        snprintf(why, n, "the path of '%.100s' is too long", name);
        return false;
    }
    if (stat(mdir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(why, n, "no model directory '%s' in the repository", mdir);
        return false;
    }
    char *text = NULL;
    size_t len = 0;
    if (read_small(cpath, &text, &len, why, n) < 0)
        return false;
    model_config mc;
    char err[400];
    warn_ctx wc = {p, name, cpath};
    bool ok = model_config_read(text ? text : "", len, name, &mc, on_ignored, &wc, err, sizeof err);
    free(text);
    if (!ok) {
        snprintf(why, n, "%s: %s", cpath, err);
        return false;
    }
    int64_t *all;
    int n_all = list_versions(mdir, mc.model_filename, &all);
    srv_model **add = n_all ? calloc((size_t)n_all, sizeof *add) : NULL;
    int n_add = 0;
    ok = false;
    if (n_all == 0) {
        snprintf(why, n, "no version directory in %s holds %s (expected %s/1/%s)", mdir,
                 mc.model_filename, mdir, mc.model_filename);
        goto out;
    }
    if (!add) {
        snprintf(why, n, "out of memory");
        goto out;
    }
    for (int i = 0; i < mc.n_versions; i++)
        if (!bsearch(&mc.versions[i], all, (size_t)n_all, sizeof *all, cmp_i64)) {
            snprintf(why, n, "%s: version_policy names version %lld, and %s/%lld/%s does not exist",
                     cpath, (long long)mc.versions[i], mdir, (long long)mc.versions[i],
                     mc.model_filename);
            goto out;
        }
    ferry_engine_config ec = p->ec;
    ec.device = p->device;
    ferry_batcher_config bc = p->bc;
    model_config_apply(&mc, &ec, &bc);
    size_t lo = 0;
    loaded[0] = '\0';
    for (int i = 0; i < n_all; i++) {
        if (!model_config_wants(&mc, all[i], all, n_all))
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%lld/%s", mdir, (long long)all[i], mc.model_filename);
        if (!build_version(name, all[i], path, &p->mo, &ec, &bc, &add[n_add], why, n))
            goto out;
        n_add++;
        if (lo < ln)
            lo +=
                (size_t)snprintf(loaded + lo, ln - lo, "%s%lld", lo ? "," : "", (long long)all[i]);
    }
    if (lo < ln) {
        char knobs[400];
        describe_knobs(&ec, &bc, knobs, sizeof knobs);
        snprintf(loaded + lo, ln - lo, ": %s", knobs);
    }
    srv_model *old;
    if (srv_models_swap(p->srv, name, add, n_add, &old) != FERRY_OK) {
        snprintf(why, n, "%s", ferry_last_error());
        goto out;
    }
    n_add = 0; /* the table's now */
    retire(p, old);
    ok = true;
out:
    for (int i = 0; i < n_add; i++)
        srv_model_free(add[i]);
    free(add);
    free(all);
    return ok;
}

static bool do_load(srv_repo *p, const char *name, char *why, size_t n)
{
    char loaded[600];
    if (!load_model(p, name, why, n, loaded, sizeof loaded)) {
        char reason[600];
        snprintf(reason, sizeof reason, "failed to load: %s", why);
        set_state(p, name, reason);
        say(p, 0, "model '%s' failed to load: %s", name, why);
        return false;
    }
    set_state(p, name, "");
    char *knobs = strchr(loaded, ':');
    if (knobs)
        *knobs++ = '\0';
    say(p, 2, "model '%s' loaded from %s/%s: version%s %s;%s", name, p->dir, name,
        strchr(loaded, ',') ? "s" : "", loaded, knobs ? knobs : "");
    return true;
}

/* Takes name's versions out of the table (they drain, then are freed).
 * false with why when name is not the repository's. */
static bool do_unload(srv_repo *p, const char *name, const char *reason, char *why, size_t n)
{
    srv_model *old;
    if (srv_models_swap(p->srv, name, NULL, 0, &old) != FERRY_OK) {
        snprintf(why, n, "%s", ferry_last_error());
        return false;
    }
    bool was = old != NULL;
    if (!was && !in_repo(p, name)) {
        snprintf(why, n, "no model directory '%s/%s' in the repository, and no such model loaded",
                 p->dir, name);
        return false;
    }
    retire(p, old);
    set_state(p, name, reason);
    if (was)
        say(p, 2, "model '%s' unloaded%s%s", name, strcmp(reason, "unloaded") ? ": " : "",
            strcmp(reason, "unloaded") ? reason : "");
    return true;
}

/* ---------------------------------------------------------------- scan */

/* The model directories of the repository (names, malloc'd). */
static int list_models(srv_repo *p, char ***out)
{
    *out = NULL;
    DIR *d = opendir(p->dir);
    if (!d)
        return -1;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[PATH_MAX];
        struct stat st;
        if (!good_name(e->d_name) ||
            snprintf(path, sizeof path, "%s/%s", p->dir, e->d_name) >= (int)sizeof path ||
            stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **nn = realloc(*out, (size_t)cap * sizeof *nn);
            if (!nn)
                break;
            *out = nn;
        }
        if (((*out)[n] = strdup(e->d_name)))
            n++;
    }
    closedir(d);
    return n;
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Loads every model whose files changed since it was last loaded (or
 * tried); with unload, unloads those whose directory went away. */
static void scan(srv_repo *p, bool unload)
{
    char **names;
    int n = list_models(p, &names);
    if (n < 0) {
        say(p, 0, "cannot read the model repository '%s': %s", p->dir, strerror(errno));
        return;
    }
    if (n)
        qsort(names, (size_t)n, sizeof *names, cmp_str);
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n_ents; i++)
        p->ents[i].seen = false;
    pthread_mutex_unlock(&p->mu);
    char why[600];
    for (int i = 0; i < n; i++) {
        char mdir[PATH_MAX];
        snprintf(mdir, sizeof mdir, "%s/%s", p->dir, names[i]);
        uint64_t sig = model_sig(mdir);
        pthread_mutex_lock(&p->mu);
        repo_entry *e = entry(p, names[i], true);
        bool changed = e && (!e->has_sig || e->sig != sig);
        if (e)
            e->seen = true;
        pthread_mutex_unlock(&p->mu);
        if (!changed)
            continue;
        do_load(p, names[i], why, sizeof why);
        pthread_mutex_lock(&p->mu);
        if ((e = entry(p, names[i], false))) {
            e->has_sig = true;
            e->sig = sig; /* what was read: a change during the load is seen next time */
        }
        pthread_mutex_unlock(&p->mu);
    }
    free_names(names, n);
    if (!unload)
        return;
    for (;;) {
        char gone[256] = "";
        pthread_mutex_lock(&p->mu);
        for (int i = 0; i < p->n_ents && !*gone; i++)
            if (!p->ents[i].seen)
                snprintf(gone, sizeof gone, "%s", p->ents[i].name);
        pthread_mutex_unlock(&p->mu);
        if (!*gone)
            break;
        do_unload(p, gone, "removed from the repository", why, sizeof why);
        pthread_mutex_lock(&p->mu); /* then gone from the index too */
        repo_entry *e = entry(p, gone, false);
        if (e)
            *e = p->ents[--p->n_ents];
        pthread_mutex_unlock(&p->mu);
    }
}

/* -------------------------------------------------------------- thread */

/* Frees the retired entries no request holds any more; true if some wait. */
static bool reap(srv_repo *p)
{
    srv_model **link = &p->retired;
    while (*link) {
        srv_model *m = *link;
        if (atomic_load_explicit(&m->refs, memory_order_acquire) == 1) {
            *link = m->next_retired;
            srv_model_free(m); /* its batcher drains nothing: no request holds it */
        } else {
            link = &m->next_retired;
        }
    }
    return p->retired != NULL;
}

static void run_job(srv_repo *p, repo_job *j)
{
    srv_request *r = j->r;
    char why[600];
    bool ok = j->kind == JOB_LOAD ? do_load(p, r->repo_name, why, sizeof why)
                                  : do_unload(p, r->repo_name, "unloaded", why, sizeof why);
    if (!ok) {
        r->err_status = MHD_HTTP_BAD_REQUEST;
        snprintf(r->err_msg, sizeof r->err_msg, "failed to %s '%s': %s",
                 j->kind == JOB_LOAD ? "load" : "unload", r->repo_name, why);
    }
    free(j);
    srv_request_resume(r);
}

static void deadline_in(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static bool before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void *repo_main(void *arg)
{
    srv_repo *p = arg;
    struct timespec next_poll;
    deadline_in(&next_poll, (long)p->poll_secs * 1000);
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        if (p->head) {
            repo_job *j = p->head;
            p->head = j->next;
            if (!p->head)
                p->tail = NULL;
            pthread_mutex_unlock(&p->mu);
            run_job(p, j);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        pthread_mutex_unlock(&p->mu);
        bool waiting = reap(p);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (p->mode == FERRY_MODEL_CONTROL_POLL && !before(&now, &next_poll)) {
            scan(p, true);
            deadline_in(&next_poll, (long)p->poll_secs * 1000);
        }
        pthread_mutex_lock(&p->mu);
        if (p->stop || p->head)
            continue;
        struct timespec until;
        bool timed = p->mode == FERRY_MODEL_CONTROL_POLL || waiting;
        if (waiting) {
            deadline_in(&until, REAP_MS);
            if (p->mode == FERRY_MODEL_CONTROL_POLL && before(&next_poll, &until))
                until = next_poll;
        } else {
            until = next_poll;
        }
        if (timed)
            pthread_cond_timedwait(&p->cv, &p->mu, &until);
        else
            pthread_cond_wait(&p->cv, &p->mu);
    }
    /* stopping: what is still queued is answered, not run */
    repo_job *j = p->head;
    p->head = p->tail = NULL;
    pthread_mutex_unlock(&p->mu);
    while (j) {
        repo_job *next = j->next;
        j->r->err_status = MHD_HTTP_SERVICE_UNAVAILABLE;
        snprintf(j->r->err_msg, sizeof j->r->err_msg, "server is shutting down");
        srv_request_resume(j->r);
        free(j);
        j = next;
    }
    return NULL;
}

void srv_repo_kick(srv_repo *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

ferry_status srv_repo_start(srv_repo *p)
{
    /* Signals are the process's, not this thread's: it sleeps without a
     * timeout in cond_wait, where a signal it took would wait (under
     * ThreadSanitizer, which defers handlers to the next intercepted call,
     * the SIGTERM that stops the server did). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = ferry_thread_start(&p->thread, NULL, repo_main, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc)
        return ferry_fail(FERRY_EIO, "server: cannot start the repository thread: %s",
                          strerror(rc));
    pthread_setname_np(p->thread, "ferry-repo");
    p->running = true;
    return FERRY_OK;
}

void srv_repo_stop(srv_repo *p)
{
    if (!p || !p->running)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    p->running = false;
}

void srv_repo_drain(srv_repo *p)
{
    if (!p)
        return;
    for (srv_model *m = p->retired; m; m = m->next_retired) {
        ferry_batcher_destroy(m->batcher);
        m->batcher = NULL;
    }
}

void srv_repo_free(srv_repo *p)
{
    if (!p)
        return;
    srv_repo_stop(p);
    while (p->retired) {
        srv_model *m = p->retired;
        p->retired = m->next_retired;
        srv_model_free(m);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->ents);
    free(p->dir);
    free(p->device);
    free(p->mask_input);
    free(p->length_axis);
    free(p->length_buckets);
    free(p);
}

bool srv_repo_may_start_empty(const srv_repo *p)
{
    return p && p->mode != FERRY_MODEL_CONTROL_NONE;
}

/* ------------------------------------------------------------- set up */

ferry_status ferry_server_set_repository(ferry_server *s, const ferry_repository_config *cfg)
{
    if (!s || !cfg || !cfg->path || !*cfg->path)
        return ferry_fail(FERRY_EINVAL, "ferry_server_set_repository: NULL server, config or path");
    if (s->started || s->repo)
        return ferry_fail(FERRY_EINVAL,
                          "server: the model repository is set once, before starting");
    if (cfg->control < FERRY_MODEL_CONTROL_NONE || cfg->control > FERRY_MODEL_CONTROL_POLL)
        return ferry_fail(FERRY_EINVAL, "server: unknown model control mode %d", (int)cfg->control);
    if (cfg->poll_secs < 1 && cfg->control == FERRY_MODEL_CONTROL_POLL)
        return ferry_fail(FERRY_EINVAL, "server: poll interval %d s: expected at least 1",
                          cfg->poll_secs);
    if (cfg->n_load && cfg->control != FERRY_MODEL_CONTROL_EXPLICIT)
        return ferry_fail(FERRY_EINVAL,
                          "server: models to load at start are for the explicit control mode "
                          "(the %s mode loads every model)",
                          mode_name(cfg->control));
    DIR *d = opendir(cfg->path);
    if (!d)
        return ferry_fail(FERRY_EIO, "cannot open model repository '%s': %s", cfg->path,
                          strerror(errno));
    closedir(d);
    srv_repo *p = calloc(1, sizeof *p);
    if (!p)
        return ferry_fail(FERRY_ENOMEM, "server: out of memory");
    p->srv = s;
    p->mode = cfg->control;
    p->poll_secs = cfg->poll_secs;
    p->ec = cfg->engine;
    p->bc = cfg->batcher;
    p->log = cfg->log;
    p->log_user = cfg->log_user;
    p->dir = strdup(cfg->path);
    p->device = strdup(cfg->engine.device ? cfg->engine.device : "cpu");
    ferry_model_options_init(&p->mo);
    bool copied = p->dir && p->device;
    if (cfg->batcher.mask_input)
        copied = copied && (p->bc.mask_input = p->mask_input = strdup(cfg->batcher.mask_input));
    if (cfg->model_options) {
        const ferry_model_options *mo = cfg->model_options;
        if (mo->length_axis)
            copied = copied && (p->mo.length_axis = p->length_axis = strdup(mo->length_axis));
        if (mo->length_buckets && mo->n_length_buckets > 0) {
            size_t sz = (size_t)mo->n_length_buckets * sizeof *mo->length_buckets;
            p->length_buckets = malloc(sz);
            copied = copied && p->length_buckets;
            if (p->length_buckets)
                memcpy(p->length_buckets, mo->length_buckets, sz);
            p->mo.length_buckets = p->length_buckets;
            p->mo.n_length_buckets = mo->n_length_buckets;
        }
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (!copied || rc || pthread_mutex_init(&p->mu, NULL)) {
        if (!rc)
            pthread_cond_destroy(&p->cv);
        free(p->dir);
        free(p->device);
        free(p->mask_input);
        free(p->length_axis);
        free(p->length_buckets);
        free(p);
        return ferry_fail(FERRY_ENOMEM, "server: out of memory");
    }
    s->repo = p;
    char why[600];
    if (p->mode == FERRY_MODEL_CONTROL_EXPLICIT) {
        for (int i = 0; i < cfg->n_load; i++) {
            if (!cfg->load[i] || !good_name(cfg->load[i]))
                say(p, 0, "model '%s' failed to load: not a model name",
                    cfg->load[i] ? cfg->load[i] : "(null)");
            else
                do_load(p, cfg->load[i], why, sizeof why);
        }
    } else {
        scan(p, false);
    }
    return FERRY_OK;
}

/* ------------------------------------------------------------ requests */

static int cmp_model_version(const void *a, const void *b)
{
    const srv_model *x = *(srv_model *const *)a, *y = *(srv_model *const *)b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    size_t lx = strlen(x->version), ly = strlen(y->version); /* numbers, as a rule */
    return lx != ly ? (lx > ly) - (lx < ly) : strcmp(x->version, y->version);
}

/* The index: every model of the repository directory, every entry this
 * repository knows (loaded, failed, unloaded) and every model served
 * (READY, one item per version), sorted by name. */
static void write_index(srv_repo *p, jsonw *w, bool ready_only)
{
    ferry_server *s = p->srv;
    char **names;
    int n = list_models(p, &names);
    if (n < 0)
        n = 0;
    pthread_mutex_lock(&p->mu);
    pthread_rwlock_rdlock(&s->models_lock);
    srv_model **served = s->n_models ? malloc((size_t)s->n_models * sizeof *served) : NULL;
    int n_served = served ? s->n_models : 0;
    if (served)
        memcpy(served, s->models, (size_t)n_served * sizeof *served);
    if (n_served)
        qsort(served, (size_t)n_served, sizeof *served, cmp_model_version);
    /* the names of entries not in the directory (any more) */
    for (int i = 0; i < p->n_ents; i++) {
        bool there = false;
        for (int k = 0; k < n && !there; k++)
            there = !strcmp(names[k], p->ents[i].name);
        if (there)
            continue;
        char **nn = realloc(names, (size_t)(n + 1) * sizeof *nn);
        if (!nn)
            break;
        names = nn;
        if ((names[n] = strdup(p->ents[i].name)))
            n++;
    }
    if (n)
        qsort(names, (size_t)n, sizeof *names, cmp_str);
    jsonw_char(w, '[');
    bool first = true;
    int k = 0; /* next served entry */
    for (int i = 0; i <= n; i++) {
        /* served entries sorting before names[i] (or all the rest) */
        bool listed = false;
        for (; k < n_served && (i == n || strcmp(served[k]->name, names[i]) <= 0); k++) {
            srv_model *m = served[k];
            if (i < n && !strcmp(m->name, names[i]))
                listed = true;
            jsonw_str_raw(w, first ? "{\"name\":" : ",{\"name\":");
            first = false;
            jsonw_str(w, m->name);
            jsonw_str_raw(w, ",\"version\":");
            jsonw_str(w, m->version);
            jsonw_str_raw(w, ",\"state\":\"READY\",\"reason\":\"\"}");
        }
        if (i == n || listed || ready_only)
            continue;
        repo_entry *e = entry(p, names[i], false);
        jsonw_str_raw(w, first ? "{\"name\":" : ",{\"name\":");
        first = false;
        jsonw_str(w, names[i]);
        if (e && e->tried) {
            jsonw_str_raw(w, ",\"state\":\"UNAVAILABLE\",\"reason\":");
            jsonw_str(w, e->reason);
        }
        jsonw_char(w, '}');
    }
    jsonw_char(w, ']');
    pthread_rwlock_unlock(&s->models_lock);
    pthread_mutex_unlock(&p->mu);
    free(served);
    free_names(names, n);
}

/* The body of a repository request: empty, or an object; returns the
 * parsed object (NULL when empty) or sets the request's error. */
static bool read_body(srv_request *r, cJSON **out)
{
    *out = NULL;
    size_t i = 0;
    while (i < r->len &&
           (r->body[i] == ' ' || r->body[i] == '\n' || r->body[i] == '\r' || r->body[i] == '\t'))
        i++;
    if (i == r->len)
        return true;
    cJSON *j = cJSON_ParseWithLength(r->body, r->len);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        r->err_status = MHD_HTTP_BAD_REQUEST;
        snprintf(r->err_msg, sizeof r->err_msg, "the request body must be empty or a JSON object");
        return false;
    }
    *out = j;
    return true;
}

bool srv_repo_request(srv_request *r, jsonw *w, unsigned *status)
{
    srv_repo *p = r->srv->repo;
    *status = MHD_HTTP_OK;
    if (r->repo_queued)
        return true; /* resumed: done, and an error would have been answered */
    cJSON *body;
    if (!read_body(r, &body))
        return true;
    if (r->route == ROUTE_REPO_INDEX) {
        const cJSON *ready = cJSON_GetObjectItemCaseSensitive(body, "ready");
        if (ready && !cJSON_IsBool(ready)) {
            r->err_status = MHD_HTTP_BAD_REQUEST;
            snprintf(r->err_msg, sizeof r->err_msg, "'ready' must be true or false");
        } else {
            write_index(p, w, cJSON_IsTrue(ready));
        }
        cJSON_Delete(body);
        return true;
    }
    const char *verb = r->route == ROUTE_REPO_LOAD ? "load" : "unload";
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(body, "parameters");
    const cJSON *item;
    r->err_status = MHD_HTTP_BAD_REQUEST;
    if (p->mode != FERRY_MODEL_CONTROL_EXPLICIT) {
        snprintf(r->err_msg, sizeof r->err_msg,
                 "cannot %s '%.100s': the model control mode is %s; requests load and unload "
                 "models with --model-control-mode explicit",
                 verb, r->repo_name, mode_name(p->mode));
    } else if (!good_name(r->repo_name)) {
        snprintf(r->err_msg, sizeof r->err_msg, "cannot %s '%.100s': not a model name", verb,
                 r->repo_name);
    } else if (params && !cJSON_IsObject(params)) {
        snprintf(r->err_msg, sizeof r->err_msg, "'parameters' must be an object");
    } else if (r->route == ROUTE_REPO_LOAD && params && (item = params->child) != NULL) {
        /* config and file: overrides load a model from the request */
        snprintf(r->err_msg, sizeof r->err_msg,
                 "load parameter '%.100s' is not supported: Ferry loads models from the "
                 "repository's files",
                 item->string ? item->string : "");
    } else {
        r->err_status = 0;
    }
    cJSON_Delete(body);
    if (r->err_status)
        return true;
    repo_job *j = calloc(1, sizeof *j);
    if (!j) {
        r->err_status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        snprintf(r->err_msg, sizeof r->err_msg, "out of memory");
        return true;
    }
    j->kind = r->route == ROUTE_REPO_LOAD ? JOB_LOAD : JOB_UNLOAD;
    j->r = r;
    pthread_mutex_lock(&p->mu);
    if (p->stop) { /* (the thread runs: the server has started) */
        pthread_mutex_unlock(&p->mu);
        free(j);
        r->err_status = MHD_HTTP_SERVICE_UNAVAILABLE;
        snprintf(r->err_msg, sizeof r->err_msg, "server is shutting down");
        return true;
    }
    /* suspended before the thread can see it: resuming must follow */
    MHD_suspend_connection(r->conn);
    r->repo_queued = true;
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return false;
}

bool srv_repo_absent(srv_repo *p, const char *name, char *buf, size_t n)
{
    pthread_mutex_lock(&p->mu);
    repo_entry *e = entry(p, name, false);
    bool known = e != NULL;
    if (e && e->tried && *e->reason)
        snprintf(buf, n, "model '%.100s' is not loaded: %.250s", name, e->reason);
    else if (e || p->mode == FERRY_MODEL_CONTROL_EXPLICIT)
        snprintf(buf, n, "model '%.100s' is not loaded%s", name,
                 p->mode == FERRY_MODEL_CONTROL_EXPLICIT
                     ? " (POST /v2/repository/models/NAME/load loads it)"
                     : "");
    pthread_mutex_unlock(&p->mu);
    if (!known && p->mode == FERRY_MODEL_CONTROL_EXPLICIT)
        known = in_repo(p, name); /* only a model the repository holds */
    return known;
}
