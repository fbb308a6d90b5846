/*
 * bench_report.c - what `ferry bench` measured, for people and machines:
 * each point's median and spread over its runs, the tables, the JSON and
 * the SVG plot, and the output files, which are opened before measuring
 * (a path that cannot be written fails at once) and written at the end
 * (a write that fails is an error, with the reason, and a non-zero exit).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/bench.h"
#include "cli/common.h"

/* ------------------------------------------------------------ statistics */

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void bench_sort(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_d);
}

double bench_median(double *v, int n)
{
    if (n <= 0)
        return 0;
    bench_sort(v, (size_t)n);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_measure_finish(bench_measure *m, double stability_pct)
{
    double v[BENCH_MAX_REPEAT];
    memcpy(v, m->run, (size_t)m->n * sizeof *v);
    m->median = bench_median(v, m->n);
    m->min = m->n ? v[0] : 0;
    m->max = m->n ? v[m->n - 1] : 0;
    /* a run that measured nothing beside one that did: no finite spread */
    m->spread_pct = m->min > 0 ? (m->max - m->min) / m->min * 100 : (m->max > 0 ? INFINITY : 0);
    m->unstable = m->n > 1 && m->spread_pct > stability_pct;
}

/* ------------------------------------------------------------ tables */

static void print_num(double v)
{
    if (v >= 1e7)
        printf("%12.2fM", v / 1e6);
    else if (v >= 100)
        printf("%13.0f", v);
    else
        printf("%13.1f", v);
}

/* " 12.3%*": the spread, '*' when past the margin; "-" for a single run. */
static void print_spread(const bench_measure *m)
{
    if (m->n < 2)
        printf(" %7s ", "-");
    else if (!isfinite(m->spread_pct))
        printf(" %7s*", "inf");
    else
        printf(" %6.1f%%%c", m->spread_pct, m->unstable ? '*' : ' ');
}

static bool any_unstable(const bench_opts *o, const bench_results *r)
{
    for (int k = 0; k < o->n_sizes; k++)
        if (r->sweep[k].sps.unstable)
            return true;
    for (int k = 0; k < r->n_thr; k++)
        if (r->thr[k].sps.unstable)
            return true;
    for (int k = 0; o->stack && k < BENCH_STACK_ROWS; k++)
        if (!r->stack[k].skipped[0] && r->stack[k].sps.unstable)
            return true;
    for (int k = 0; o->batcher && k < o->n_conc; k++)
        if (r->batcher[k].rps.unstable)
            return true;
    return false;
}

static const bench_point *thr_for(const bench_results *r, int64_t n)
{
    for (int j = 0; j < r->n_thr; j++)
        if (r->thr[j].batch == n)
            return &r->thr[j];
    return NULL;
}

static bool in_sweep(const bench_opts *o, int64_t n)
{
    for (int k = 0; k < o->n_sizes; k++)
        if (o->sizes[k] == n)
            return true;
    return false;
}

static void print_sweep(const bench_opts *o, const bench_results *r)
{
    if (o->inflight > 1)
        printf("Batching: one caller, batch b, %d batches in flight\n", o->inflight);
    else
        printf("Batching: one caller, batch b, one synchronous call at a time\n");
    printf("%8s %13s %9s", "batch", "samples/s", "spread");
    if (o->latency)
        printf(" %10s %10s %10s", "p50 us", "p90 us", "p99 us");
    if (r->n_thr)
        printf(" %13s %9s %9s", "threads(b)", "spread", "ratio");
    printf("\n");
    for (int k = 0; k < o->n_sizes; k++) {
        const bench_point *p = &r->sweep[k], *t = thr_for(r, p->batch);
        printf("%8lld ", (long long)p->batch);
        print_num(p->sps.median);
        print_spread(&p->sps);
        if (o->latency)
            printf(" %10.1f %10.1f %10.1f", p->p50, p->p90, p->p99);
        if (t) {
            printf(" ");
            print_num(t->sps.median);
            print_spread(&t->sps);
            printf(" %8.1fx", p->sps.median / t->sps.median);
        }
        printf("\n");
    }
    /* caller counts --threads named that are no batch size of the sweep */
    bool head = false;
    for (int j = 0; j < r->n_thr; j++) {
        if (in_sweep(o, r->thr[j].batch))
            continue;
        if (!head)
            printf("\nThreading: N callers x batch 1\n%8s %13s %9s\n", "callers", "samples/s",
                   "spread");
        head = true;
        printf("%8lld ", (long long)r->thr[j].batch);
        print_num(r->thr[j].sps.median);
        print_spread(&r->thr[j].sps);
        printf("\n");
    }
    int at = -1; /* 8 callers if measured, else the most */
    for (int j = 0; j < r->n_thr; j++)
        if (in_sweep(o, r->thr[j].batch) && (at < 0 || r->thr[at].batch != 8))
            at = j;
    for (int k = 0; at >= 0 && k < o->n_sizes; k++) {
        double b = r->sweep[k].sps.median, t = r->thr[at].sps.median;
        if (r->sweep[k].batch == r->thr[at].batch)
            printf("\nAt %lld parallel units: batching %.0f samples/s, threading %.0f "
                   "samples/s, %s is %.1fx faster\n",
                   (long long)r->thr[at].batch, b, t, b >= t ? "batching" : "threading",
                   b >= t ? b / t : t / b);
    }
}

static void print_stack(const bench_results *r)
{
    printf("\nOptimization stack\n%-26s %-40s %13s %9s %8s %11s\n", "step", "config", "samples/s",
           "spread", "gain", "cumulative");
    double prev = 0, base = r->stack[0].sps.median;
    for (int k = 0; k < BENCH_STACK_ROWS; k++) {
        const bench_stack_row *s = &r->stack[k];
        if (s->skipped[0]) {
            printf("%-26s %-40s %13s   skipped: %.80s\n", s->step, s->config, "-", s->skipped);
            continue;
        }
        printf("%-26s %-40s ", s->step, s->config);
        print_num(s->sps.median);
        print_spread(&s->sps);
        printf(" %7.2fx %10.1fx\n", prev > 0 ? s->sps.median / prev : 1.0,
               base > 0 ? s->sps.median / base : 1.0);
        prev = s->sps.median;
    }
}

static void print_batcher(const bench_opts *o, const bench_results *r)
{
    printf("\nDynamic batcher, closed loop, one sample per request\n%12s %13s %9s %10s %10s "
           "%11s\n",
           "concurrency", "requests/s", "spread", "p50 us", "p99 us", "mean batch");
    for (int k = 0; k < o->n_conc; k++) {
        const bench_batcher_row *b = &r->batcher[k];
        printf("%12lld ", (long long)b->conc);
        print_num(b->rps.median);
        print_spread(&b->rps);
        if (b->p50 > 0)
            printf(" %10.1f %10.1f %11.1f\n", b->p50, b->p99, b->mean_batch);
        else /* no request both started and ended in the window */
            printf(" %10s %10s %11.1f\n", "-", "-", b->mean_batch);
    }
}

void bench_print(const bench_opts *o, const bench_results *r)
{
    printf("\nmodel %s, device %s, %s\n", o->model, r->device, cli_precision_name(o->precision));
    if (o->repeat > 1)
        printf("each point: the median of %d runs of %.2g s; spread = (max - min) / min\n",
               o->repeat, o->duration);
    printf("\n");
    print_sweep(o, r);
    if (o->stack)
        print_stack(r);
    if (o->batcher)
        print_batcher(o, r);
    if (any_unstable(o, r))
        printf("\n* the runs of this point differ by more than %g%% (--stability-percentage):\n"
               "  the machine was busy or the point is noisy; measure it again with a larger\n"
               "  --repeat or --duration, or on a quiet machine\n",
               o->stability);
}

/* ------------------------------------------------------------ JSON */

/* key: the median; "spread": the runs and their median, min, max and
 * spread in percent (null for one run, or when a run measured nothing);
 * "stable": within --stability-percentage. */
static void json_measure(cJSON *p, const char *key, const bench_measure *m)
{
    cJSON_AddNumberToObject(p, key, m->median);
    cJSON *s = cJSON_AddObjectToObject(p, "spread");
    cJSON_AddNumberToObject(s, "median", m->median);
    cJSON_AddNumberToObject(s, "min", m->min);
    cJSON_AddNumberToObject(s, "max", m->max);
    if (m->n > 1 && isfinite(m->spread_pct))
        cJSON_AddNumberToObject(s, "pct", m->spread_pct);
    else
        cJSON_AddNullToObject(s, "pct");
    cJSON *runs = cJSON_AddArrayToObject(s, "runs");
    for (int i = 0; i < m->n; i++)
        cJSON_AddItemToArray(runs, cJSON_CreateNumber(m->run[i]));
    cJSON_AddBoolToObject(p, "stable", !m->unstable);
}

static char *json_text(const bench_opts *o, const bench_results *r)
{
    cJSON *j = cJSON_CreateObject();
    char date[32];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    cJSON_AddStringToObject(j, "impl", "ferry");
    cJSON_AddStringToObject(j, "version", FERRY_VERSION);
    cJSON_AddStringToObject(j, "device", r->device);
    cJSON_AddStringToObject(j, "model", o->model);
    cJSON_AddStringToObject(j, "precision", cli_precision_name(o->precision));
    cJSON_AddStringToObject(j, "date", date);
    cJSON_AddNumberToObject(j, "repeat", o->repeat);
    cJSON_AddNumberToObject(j, "duration_s", o->duration);
    cJSON_AddNumberToObject(j, "stability_pct", o->stability);
    cJSON *sw = cJSON_AddArrayToObject(j, "sweep");
    for (int k = 0; k < o->n_sizes; k++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "batch", (double)r->sweep[k].batch);
        json_measure(p, "samples_per_s", &r->sweep[k].sps);
        cJSON_AddNumberToObject(p, "p50_us", r->sweep[k].p50);
        cJSON_AddNumberToObject(p, "p90_us", r->sweep[k].p90);
        cJSON_AddNumberToObject(p, "p99_us", r->sweep[k].p99);
        cJSON_AddItemToArray(sw, p);
    }
    cJSON *th = cJSON_AddArrayToObject(j, "threading");
    for (int k = 0; k < r->n_thr; k++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "threads", (double)r->thr[k].batch);
        cJSON_AddNumberToObject(p, "batch", 1);
        json_measure(p, "samples_per_s", &r->thr[k].sps);
        cJSON_AddItemToArray(th, p);
    }
    cJSON *sk = cJSON_AddArrayToObject(j, "stack");
    double prev = 0, base = r->stack[0].sps.median;
    for (int k = 0; o->stack && k < BENCH_STACK_ROWS; k++) {
        const bench_stack_row *s = &r->stack[k];
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "step", s->step);
        cJSON_AddStringToObject(p, "config", s->config);
        if (s->skipped[0]) {
            cJSON_AddNullToObject(p, "samples_per_s");
            cJSON_AddStringToObject(p, "skipped", s->skipped);
        } else {
            json_measure(p, "samples_per_s", &s->sps);
            cJSON_AddNumberToObject(p, "gain", prev > 0 ? s->sps.median / prev : 1.0);
            cJSON_AddNumberToObject(p, "cumulative", base > 0 ? s->sps.median / base : 1.0);
            cJSON_AddNullToObject(p, "skipped");
            prev = s->sps.median;
        }
        cJSON_AddItemToArray(sk, p);
    }
    cJSON *ba = cJSON_AddArrayToObject(j, "batcher");
    for (int k = 0; o->batcher && k < o->n_conc; k++) {
        const bench_batcher_row *b = &r->batcher[k];
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "concurrency", (double)b->conc);
        json_measure(p, "requests_per_s", &b->rps);
        cJSON_AddNumberToObject(p, "p50_us", b->p50);
        cJSON_AddNumberToObject(p, "p99_us", b->p99);
        cJSON_AddNumberToObject(p, "mean_batch", b->mean_batch);
        cJSON_AddItemToArray(ba, p);
    }
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    return s;
}

/* ------------------------------------------------------------ SVG */

static void write_svg(FILE *f, const bench_opts *o, const bench_results *r, const char *title)
{
    const bench_point *pts = r->sweep, *thr = r->thr;
    int n = o->n_sizes, n_thr = r->n_thr;
    double xmin = 1e300, xmax = 0, ymin = 1e300, ymax = 0;
    for (int i = 0; i < n; i++) {
        xmin = fmin(xmin, (double)pts[i].batch);
        xmax = fmax(xmax, (double)pts[i].batch);
        ymin = fmin(ymin, pts[i].sps.median);
        ymax = fmax(ymax, pts[i].sps.median);
    }
    for (int i = 0; i < n_thr; i++) {
        xmin = fmin(xmin, (double)thr[i].batch);
        xmax = fmax(xmax, (double)thr[i].batch);
        ymin = fmin(ymin, thr[i].sps.median);
        ymax = fmax(ymax, thr[i].sps.median);
    }
    if (xmax <= xmin)
        xmax = xmin * 2;
    ymin = pow(10, floor(log10(ymin > 0 ? ymin : 1)));
    ymax = pow(10, ceil(log10(ymax > ymin ? ymax : ymin * 10)));
    const double W = 720, H = 440, L = 80, R = 20, T = 40, B = 60;
#define XS(x) (L + (log2(x) - log2(xmin)) / (log2(xmax) - log2(xmin)) * (W - L - R))
#define YS(y) (H - B - (log10(y) - log10(ymin)) / (log10(ymax) - log10(ymin)) * (H - T - B))
    fprintf(f,
            "<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' height='%.0f' "
            "font-family='sans-serif' font-size='12'>\n<rect width='100%%' height='100%%' "
            "fill='white'/>\n<text x='%.0f' y='24' font-size='15'>%s</text>\n",
            W, H, L, title);
    for (double y = ymin; y <= ymax * 1.001; y *= 10) {
        fprintf(f, "<line x1='%.1f' x2='%.1f' y1='%.1f' y2='%.1f' stroke='#ddd'/>", L, W - R, YS(y),
                YS(y));
        fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='end'>%.0e</text>\n", L - 6, YS(y) + 4, y);
    }
    for (int i = 0; i < n; i++)
        fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='middle'>%lld</text>\n",
                XS((double)pts[i].batch), H - B + 18, (long long)pts[i].batch);
    fprintf(f, "<text x='%.0f' y='%.0f' text-anchor='middle'>batch size / parallel units</text>\n",
            (L + W - R) / 2, H - 20);
    fprintf(f,
            "<text transform='translate(18,%.0f) rotate(-90)' "
            "text-anchor='middle'>samples/s</text>\n",
            (T + H - B) / 2);
    const bench_point *series[2] = {pts, thr};
    int counts[2] = {n, n_thr};
    const char *colors[2] = {"#1f77b4", "#d62728"},
               *names[2] = {"batching (1 caller, batch b)", "threading (b callers, batch 1)"};
    for (int s = 0; s < 2; s++) {
        if (!counts[s])
            continue;
        fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='2' points='", colors[s]);
        for (int i = 0; i < counts[s]; i++)
            fprintf(f, "%.1f,%.1f ", XS((double)series[s][i].batch), YS(series[s][i].sps.median));
        fprintf(f, "'/>\n");
        /* each point's min-max over its runs as a bar, then the median */
        for (int i = 0; i < counts[s]; i++) {
            const bench_measure *m = &series[s][i].sps;
            double x = XS((double)series[s][i].batch);
            if (m->n > 1 && m->min > 0)
                fprintf(f, "<line x1='%.1f' x2='%.1f' y1='%.1f' y2='%.1f' stroke='%s'/>", x, x,
                        YS(m->min), YS(m->max), colors[s]);
            fprintf(f, "<circle cx='%.1f' cy='%.1f' r='3' fill='%s'/>\n", x, YS(m->median),
                    colors[s]);
        }
        fprintf(f,
                "<rect x='%.0f' y='%.0f' width='12' height='3' fill='%s'/>"
                "<text x='%.0f' y='%.0f'>%s</text>\n",
                L + 10, T + 10 + s * 18.0, colors[s], L + 28, T + 15 + s * 18.0, names[s]);
    }
#undef XS
#undef YS
    fprintf(f, "</svg>\n");
}

/* ------------------------------------------------------------ files */

/* Opens path for writing without truncating it: an existing file keeps
 * its contents until the results replace them. */
static FILE *open_output(const char *opt, const char *path, bool *created)
{
    *created = false;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0)
        *created = true;
    else if (errno == EEXIST)
        fd = open(path, O_WRONLY | O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        fprintf(stderr, "ferry bench: %s %s: cannot write: %s\n", opt, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        if (*created)
            unlink(path);
        *created = false;
    }
    return f;
}

static void discard_output(FILE **f, const char *path, bool *created)
{
    if (*f)
        fclose(*f);
    if (*created)
        unlink(path);
    *f = NULL;
    *created = false;
}

int bench_outputs_open(const bench_opts *o, bench_outputs *out)
{
    memset(out, 0, sizeof *out);
    if (o->json && !(out->json = open_output("--json", o->json, &out->json_created)))
        return -1;
    if (o->plot && !(out->plot = open_output("--plot", o->plot, &out->plot_created))) {
        discard_output(&out->json, o->json, &out->json_created);
        return -1;
    }
    return 0;
}

void bench_outputs_abort(const bench_opts *o, bench_outputs *out)
{
    discard_output(&out->json, o->json, &out->json_created);
    discard_output(&out->plot, o->plot, &out->plot_created);
}

/* Empties a regular file, then lets write(f) fill it; any error on the way,
 * the final flush and close included, is reported with its reason. */
static int fill_output(const char *opt, const char *path, FILE *f,
                       void (*write)(FILE *, const void *), const void *arg)
{
    struct stat st;
    int err = 0;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && ftruncate(fileno(f), 0) != 0)
        err = errno;
    if (!err) {
        write(f, arg);
        if (fflush(f) != 0 || ferror(f))
            err = errno ? errno : EIO;
    }
    if (fclose(f) != 0 && !err)
        err = errno;
    if (err)
        fprintf(stderr, "ferry bench: %s %s: cannot write: %s\n", opt, path, strerror(err));
    return err ? -1 : 0;
}

static void put_text(FILE *f, const void *text)
{
    fputs(text, f);
}

typedef struct svg_args {
    const bench_opts *o;
    const bench_results *r;
} svg_args;

static void put_svg(FILE *f, const void *arg)
{
    const svg_args *a = arg;
    char title[512];
    snprintf(title, sizeof title, "ferry bench: %s on %s", a->o->model, a->r->device);
    write_svg(f, a->o, a->r, title);
}

int bench_outputs_write(const bench_opts *o, const bench_results *r, bench_outputs *out)
{
    int rc = 0;
    if (out->json) {
        char *s = json_text(o, r);
        errno = 0;
        int bad = s ? fill_output("--json", o->json, out->json, put_text, s) : -1;
        if (!s) {
            fprintf(stderr, "ferry bench: --json %s: out of memory\n", o->json);
            fclose(out->json);
        }
        free(s);
        out->json = NULL;
        out->json_created &= bad != 0; /* a file made for a failed write goes */
        rc |= bad;
    }
    if (out->plot) {
        svg_args a = {o, r};
        errno = 0;
        int bad = fill_output("--plot", o->plot, out->plot, put_svg, &a);
        out->plot = NULL;
        out->plot_created &= bad != 0;
        rc |= bad;
    }
    return rc ? -1 : 0;
}
