/* cpus.c - how many cores this process may run on. */
#include <sched.h>
#include <unistd.h>

#include "util/cpus.h"

int ferry_usable_cpus(void)
{
    /* The affinity mask, not the machine: under taskset, a cpuset cgroup
     * or a container, threads sized to every online core would fight
     * over the few this process has (15 spinning pool helpers on 2
     * cores made a forward 5-10x slower). */
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
