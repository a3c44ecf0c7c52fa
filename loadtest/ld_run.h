/* ld_run — the parent process of herald-load: checks the targets, forks the
 * workers, runs the scenario's phases (ramp, hold, publishing steps),
 * prints a progress line every second, collects the workers' shared stats,
 * writes the JSON result, and always reaps its workers (by PID, SIGKILL
 * after a grace period), also on SIGINT/SIGTERM. */
#ifndef LD_RUN_H
#define LD_RUN_H

#include "ld_opts.h"

/* Runs the whole test. Returns the exit code: 0 done, 1 failed (bad
 * target, Redis unreachable, no connection opened, a worker crashed). */
int ld_run(const struct ld_opts *o);

#endif
