/*
 * cpu_parallel.h - the CPU backend's own threads. One process-wide pool of
 * (cores - 1) helpers shares a job's chunks with the calling thread through
 * an atomic counter: whoever is free takes the next chunk. A helper that is
 * late (its core busy with another process) simply gets fewer chunks, so a
 * job never waits on a straggler's static share, which is what makes
 * OpenBLAS's and OpenMP's fixed splits slow on a shared machine.
 * Private to src/backend/cpu.
 */
#ifndef FERRY_BACKEND_CPU_PARALLEL_H
#define FERRY_BACKEND_CPU_PARALLEL_H

#include <stdint.h>

/* Runs fn(arg, i) for every i in [0, n_chunks), each exactly once, on the
 * calling thread and up to max_threads - 1 helpers; returns when all are
 * done. Runs everything on the caller when n_chunks == 1, max_threads <= 1,
 * the pool is taken by another caller, or another forward() is in flight
 * (the engine's workers are already using the cores). */
typedef void (*cpu_chunk_fn)(void *arg, int64_t i);
void cpu_parallel_for(cpu_chunk_fn fn, void *arg, int64_t n_chunks, int max_threads);

/* Threads the backend may use: FERRY_CPU_THREADS, else the online cores. */
int cpu_parallel_threads(void);

/* The threads a job started now would get: 1 while another forward() is
 * in flight (cpu_parallel_for would run it all on the caller), else
 * cpu_parallel_threads(). A hint: the answer may change at once. */
int cpu_parallel_available(void);

/* forward() brackets its work with these so that concurrent forwards each
 * stay on their own thread; some lone forwards are also timed, and while
 * one ran short of CPU (other processes on the cores) helpers sleep
 * between jobs instead of spinning (cpu_parallel.c). */
void cpu_parallel_enter(void);
void cpu_parallel_leave(void);

#endif
