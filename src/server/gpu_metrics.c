/*
 * gpu_metrics.c - Triton's per-GPU gauges on /metrics (nv_gpu_utilization,
 * nv_gpu_memory_total_bytes, nv_gpu_memory_used_bytes), read from NVML.
 *
 * NVML comes with the NVIDIA driver, not with the toolkit, so nothing links
 * to it: libnvidia-ml.so.1 is opened at the first scrape. Without a driver
 * (or with no GPU) there is no library or no device, and no gauge is
 * written; a GPU whose reading fails is left out of that scrape. Triton
 * reads the same values through DCGM; NVML is what DCGM reads them from.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "server/server.h"

/* The few NVML declarations used (nvml.h, which the driver's development
 * package installs, is not needed to build). */
typedef struct nvml_device *nvml_device;
typedef struct {
    unsigned long long total, free, used;
} nvml_memory;
typedef struct {
    unsigned gpu, memory; /* percent of the last sample period */
} nvml_utilization;
#define NVML_SUCCESS 0
#define NVML_UUID_LEN 96
#define GPU_MAX 64

static struct {
    int (*device_count)(unsigned *);
    int (*device_by_index)(unsigned, nvml_device *);
    int (*uuid)(nvml_device, char *, unsigned);
    int (*memory)(nvml_device, nvml_memory *);
    int (*utilization)(nvml_device, nvml_utilization *);
    unsigned n;
    nvml_device dev[GPU_MAX];
    char id[GPU_MAX][NVML_UUID_LEN];
} nvml;
static pthread_once_t nvml_once = PTHREAD_ONCE_INIT;

static void nvml_open(void)
{
    void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return;
    int (*init)(void) = (int (*)(void))dlsym(h, "nvmlInit_v2");
    *(void **)&nvml.device_count = dlsym(h, "nvmlDeviceGetCount_v2");
    *(void **)&nvml.device_by_index = dlsym(h, "nvmlDeviceGetHandleByIndex_v2");
    *(void **)&nvml.uuid = dlsym(h, "nvmlDeviceGetUUID");
    *(void **)&nvml.memory = dlsym(h, "nvmlDeviceGetMemoryInfo");
    *(void **)&nvml.utilization = dlsym(h, "nvmlDeviceGetUtilizationRates");
    unsigned n = 0;
    if (!init || !nvml.device_count || !nvml.device_by_index || !nvml.uuid || !nvml.memory ||
        !nvml.utilization || init() != NVML_SUCCESS || nvml.device_count(&n) != NVML_SUCCESS) {
        dlclose(h);
        return;
    }
    /* kept open for the process' life: scrapes may come until exit */
    for (unsigned i = 0; i < n && nvml.n < GPU_MAX; i++) {
        nvml_device d;
        if (nvml.device_by_index(i, &d) != NVML_SUCCESS ||
            nvml.uuid(d, nvml.id[nvml.n], NVML_UUID_LEN) != NVML_SUCCESS)
            continue;
        nvml.id[nvml.n][NVML_UUID_LEN - 1] = '\0';
        nvml.dev[nvml.n++] = d;
    }
}

static void gauge(jsonw *w, const char *name, const char *help, const double *v, const bool *ok)
{
    jsonw_str_raw(w, "# HELP ");
    jsonw_str_raw(w, name);
    jsonw_char(w, ' ');
    jsonw_str_raw(w, help);
    jsonw_str_raw(w, "\n# TYPE ");
    jsonw_str_raw(w, name);
    jsonw_str_raw(w, " gauge\n");
    for (unsigned i = 0; i < nvml.n; i++) {
        if (!ok[i])
            continue;
        char num[32];
        snprintf(num, sizeof num, "%.17g", v[i]);
        jsonw_str_raw(w, name);
        jsonw_str_raw(w, "{gpu_uuid=");
        jsonw_str(w, nvml.id[i]);
        jsonw_str_raw(w, "} ");
        jsonw_str_raw(w, num);
        jsonw_char(w, '\n');
    }
}

void gpu_metrics_write(jsonw *w)
{
    pthread_once(&nvml_once, nvml_open);
    if (!nvml.n)
        return;
    double util[GPU_MAX], total[GPU_MAX], used[GPU_MAX];
    bool util_ok[GPU_MAX], mem_ok[GPU_MAX];
    for (unsigned i = 0; i < nvml.n; i++) {
        nvml_utilization u;
        nvml_memory m;
        util_ok[i] = nvml.utilization(nvml.dev[i], &u) == NVML_SUCCESS;
        util[i] = util_ok[i] ? u.gpu / 100.0 : 0;
        mem_ok[i] = nvml.memory(nvml.dev[i], &m) == NVML_SUCCESS;
        total[i] = mem_ok[i] ? (double)m.total : 0;
        used[i] = mem_ok[i] ? (double)m.used : 0;
    }
    gauge(w, "nv_gpu_utilization", "GPU utilization rate (0.0 - 1.0)", util, util_ok);
    gauge(w, "nv_gpu_memory_total_bytes", "Total GPU memory, in bytes", total, mem_ok);
    gauge(w, "nv_gpu_memory_used_bytes", "Used GPU memory, in bytes", used, mem_ok);
}
