/* cpus.h - the cores this process may use. */
#ifndef FERRY_UTIL_CPUS_H
#define FERRY_UTIL_CPUS_H

/* Cores in this process's affinity mask (taskset, cpusets), else the
 * online cores; at least 1. */
int ferry_usable_cpus(void);

#endif
