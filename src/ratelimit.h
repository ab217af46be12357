/*
 * Node-wide rate limits shared by every Kore worker of one node.
 *
 * Pure C, no Kore.  The parent calls sb_rate_init() before the workers
 * fork; the table lives in an anonymous shared mapping the workers
 * inherit, and every update is a lock-free compare-and-swap, so a worker
 * killed at any point leaves nothing held.  Budgets are per key (any
 * string: "login:alice", "ip:192.0.2.1") and given on every call, so the
 * caller, not the table, decides what a key is worth.
 *
 * A fresh key may spend its whole budget at once; after that it earns
 * one hit back every seconds / requests.  Under table pressure a key may
 * lose its history, which only ever lets more through, never less.
 */

#ifndef SB_RATELIMIT_H
#define SB_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parent only, before the fork.  slots is rounded up to a power of two.
 * A second call replaces the table (the workers must not have forked
 * yet).  0, or -1 when slots is 0 or too large, or when the mapping or
 * the hash key cannot be had.
 */
int	sb_rate_init(size_t slots);
/* Unmaps the table in this process; later calls allow everything. */
void	sb_rate_free(void);

/*
 * Counts one hit against key's budget of requests per seconds.  0: the
 * hit is allowed (*retry_after = 0).  -1: over budget, nothing counted,
 * *retry_after = whole seconds (>= 1) until a hit would be allowed.
 * now_ms is a clock in milliseconds, the same for all workers; after
 * a step back a key waits at most one interval (seconds / requests).  requests or seconds 0, a
 * NULL key or an uninitialised module: always allowed.  retry_after may
 * be NULL.  Any process that inherited the table may call it.
 */
int	sb_rate_hit(const char *key, unsigned int requests,
	    unsigned int seconds, uint64_t now_ms, unsigned int *retry_after);
/* The answer sb_rate_hit() would give now, but counts nothing. */
int	sb_rate_check(const char *key, unsigned int requests,
	    unsigned int seconds, uint64_t now_ms, unsigned int *retry_after);
/* Forgets key's history, e.g. a good login clears its failure budget. */
void	sb_rate_reset(const char *key);

#endif /* SB_RATELIMIT_H */
