/*
 * fake_nvml.c - a stand-in libnvidia-ml.so.1 with two GPUs of known
 * readings, so that test_server.py can check the GPU gauges of /metrics
 * (src/server/gpu_metrics.c) on a machine without a driver: the server
 * finds it through LD_LIBRARY_PATH. The second GPU's utilization cannot be
 * read, as happens on GPUs that do not report it.
 */
#include <stdio.h>
#include <string.h>

typedef struct {
    unsigned long long total, free, used;
} nvml_memory;
typedef struct {
    unsigned gpu, memory;
} nvml_utilization;

static int gpus[2];

int nvmlInit_v2(void)
{
    return 0;
}

int nvmlDeviceGetCount_v2(unsigned *n)
{
    *n = 2;
    return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **dev)
{
    if (i >= 2)
        return 2; /* NVML_ERROR_INVALID_ARGUMENT */
    *dev = &gpus[i];
    return 0;
}

int nvmlDeviceGetUUID(void *dev, char *buf, unsigned len)
{
    snprintf(buf, len, "GPU-fake-%d", (int)((int *)dev - gpus));
    return 0;
}

int nvmlDeviceGetMemoryInfo(void *dev, nvml_memory *m)
{
    int i = (int)((int *)dev - gpus);
    m->total = 85899345920ull;
    m->used = i ? 1024 : 3221225472ull;
    m->free = m->total - m->used;
    return 0;
}

int nvmlDeviceGetUtilizationRates(void *dev, nvml_utilization *u)
{
    if ((int *)dev - gpus == 1)
        return 3; /* NVML_ERROR_NOT_SUPPORTED */
    u->gpu = 37;
    u->memory = 5;
    return 0;
}
