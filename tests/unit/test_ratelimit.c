/*
 * Unit tests for the node-wide rate limits (src/ratelimit.c), including
 * the one property that needs real processes: children hitting one key
 * at once through the shared table let exactly the budget through.
 */

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "ratelimit.h"

#define NOW	1700000000000ULL	/* ms; a realistic wall clock */
#define NCHILD	4

static int
setup(void **state)
{
	(void)state;
	return (sb_rate_init(1024));
}

static int
teardown(void **state)
{
	(void)state;
	sb_rate_free();
	return (0);
}

/* Hits key n times at now; how many were allowed. */
static unsigned int
hits(const char *key, unsigned int n, unsigned int requests,
    unsigned int seconds, uint64_t now)
{
	unsigned int	 i, ok, ra;

	for (i = 0, ok = 0; i < n; i++) {
		if (sb_rate_hit(key, requests, seconds, now, &ra) == 0)
			ok++;
	}
	return (ok);
}

static void
test_uninit(void **state)
{
	unsigned int	 ra = 99;

	(void)state;
	sb_rate_free();
	assert_int_equal(hits("k", 100, 1, 60, NOW), 100);
	assert_int_equal(sb_rate_check("k", 1, 60, NOW, &ra), 0);
	assert_int_equal(ra, 0);
	sb_rate_reset("k");
	sb_rate_free();

	assert_int_equal(sb_rate_init(0), -1);
	assert_int_equal(sb_rate_init(SIZE_MAX), -1);
	assert_int_equal(hits("k", 100, 1, 60, NOW), 100);

	/* Odd sizes round up; a second init replaces the table. */
	assert_int_equal(sb_rate_init(3), 0);
	assert_int_equal(hits("k", 5, 1, 60, NOW), 1);
	assert_int_equal(sb_rate_init(3), 0);
	assert_int_equal(hits("k", 5, 1, 60, NOW), 1);
	sb_rate_free();
	assert_int_equal(hits("k", 5, 1, 60, NOW), 5);
}

static void
test_burst(void **state)
{
	unsigned int	 ra, i;

	(void)state;
	/* 5 per minute: one hit back every 12 s. */
	for (i = 0; i < 5; i++) {
		ra = 99;
		assert_int_equal(sb_rate_hit("b", 5, 60, NOW, &ra), 0);
		assert_int_equal(ra, 0);
	}
	assert_int_equal(sb_rate_hit("b", 5, 60, NOW, &ra), -1);
	assert_int_equal(ra, 12);
	assert_int_equal(sb_rate_hit("b", 5, 60, NOW + 1000, &ra), -1);
	assert_int_equal(ra, 11);
	assert_int_equal(sb_rate_hit("b", 5, 60, NOW + 11999, &ra), -1);
	assert_int_equal(ra, 1);
	assert_int_equal(sb_rate_hit("b", 5, 60, NOW + 12000, &ra), 0);
	assert_int_equal(sb_rate_hit("b", 5, 60, NOW + 12000, &ra), -1);
	assert_int_equal(ra, 12);
	/* Refusals count nothing: the next hit is still due at 24 s. */
	assert_int_equal(sb_rate_hit("b", 5, 60, NOW + 24000, &ra), 0);

	/* Budgets that don't divide evenly keep an exact burst. */
	assert_int_equal(hits("seven", 20, 7, 1, NOW), 7);
	assert_int_equal(hits("three", 20, 3, 10, NOW), 3);
	assert_int_equal(sb_rate_hit("three", 3, 10, NOW, &ra), -1);
	assert_int_equal(ra, 4);			/* 3.33 s, rounded up */
	assert_int_equal(hits("many", 1000005, 1000001, 1, NOW), 1000001);
	assert_int_equal(hits("one", 5, 1, 1, 0), 1);	/* clock at 0 */

	/* NULL retry_after is fine. */
	assert_int_equal(sb_rate_hit("one", 1, 1, 0, NULL), -1);
	assert_int_equal(sb_rate_hit("one", 1, 1, 1000, NULL), 0);
}

static void
test_refill(void **state)
{
	unsigned int	 win[10], i, ra;
	uint64_t	 t;

	(void)state;
	/*
	 * 10 per 10 s, a client trying every 10 ms for 100 s: the burst
	 * plus one a second in the first window, then exactly the budget
	 * in every later one.
	 */
	for (i = 0; i < 10; i++)
		win[i] = 0;
	for (t = 0; t < 100000; t += 10) {
		if (sb_rate_hit("r", 10, 10, NOW + t, &ra) == 0)
			win[t / 10000]++;
		else
			assert_int_equal(ra, 1);
	}
	assert_int_equal(win[0], 19);
	for (i = 1; i < 10; i++)
		assert_int_equal(win[i], 10);

	/* Partial refill: 3 s back three hits. */
	assert_int_equal(hits("p", 20, 10, 10, NOW), 10);
	assert_int_equal(hits("p", 20, 10, 10, NOW + 3000), 3);
	/* A long idle gives back the burst, not more. */
	assert_int_equal(hits("p", 20, 10, 10, NOW + 1000000), 10);
}

static void
test_check(void **state)
{
	unsigned int	 ra, i;

	(void)state;
	for (i = 0; i < 100; i++) {
		ra = 99;
		assert_int_equal(sb_rate_check("c", 3, 60, NOW, &ra), 0);
		assert_int_equal(ra, 0);
	}
	assert_int_equal(hits("c", 10, 3, 60, NOW), 3);
	for (i = 0; i < 100; i++) {
		assert_int_equal(sb_rate_check("c", 3, 60, NOW + 5000, &ra),
		    -1);
		assert_int_equal(ra, 15);
	}
	/* check and hit agree at the boundary. */
	assert_int_equal(sb_rate_check("c", 3, 60, NOW + 19999, &ra), -1);
	assert_int_equal(ra, 1);
	assert_int_equal(sb_rate_check("c", 3, 60, NOW + 20000, &ra), 0);
	assert_int_equal(sb_rate_hit("c", 3, 60, NOW + 20000, &ra), 0);
	assert_int_equal(sb_rate_check("c", 3, 60, NOW + 20000, &ra), -1);
	assert_int_equal(ra, 20);
}

static void
test_reset(void **state)
{
	unsigned int	 ra;

	(void)state;
	assert_int_equal(hits("login:alice", 10, 5, 900, NOW), 5);
	assert_int_equal(sb_rate_check("login:alice", 5, 900, NOW, &ra), -1);
	sb_rate_reset("login:alice");
	assert_int_equal(sb_rate_check("login:alice", 5, 900, NOW, &ra), 0);
	assert_int_equal(hits("login:alice", 10, 5, 900, NOW), 5);

	/* Unknown keys and NULL are no-ops. */
	sb_rate_reset("login:nobody");
	sb_rate_reset(NULL);
	assert_int_equal(sb_rate_hit("login:alice", 5, 900, NOW, &ra), -1);
}

static void
test_independent(void **state)
{
	unsigned int	 ra;

	(void)state;
	assert_int_equal(hits("ip:192.0.2.1", 10, 2, 60, NOW), 2);
	assert_int_equal(hits("ip:192.0.2.10", 10, 2, 60, NOW), 2);
	assert_int_equal(hits("ip:192.0.2.2", 10, 4, 60, NOW), 4);
	assert_int_equal(hits("", 10, 3, 60, NOW), 3);
	assert_int_equal(sb_rate_check("ip:192.0.2.1", 2, 60, NOW, &ra), -1);
	sb_rate_reset("ip:192.0.2.1");
	assert_int_equal(sb_rate_check("ip:192.0.2.10", 2, 60, NOW, &ra), -1);
	assert_int_equal(sb_rate_check("ip:192.0.2.1", 2, 60, NOW, &ra), 0);
}

static void
test_unlimited(void **state)
{
	unsigned int	 ra;

	(void)state;
	assert_int_equal(hits("z", 1000, 0, 60, NOW), 1000);
	assert_int_equal(hits("z", 1000, 5, 0, NOW), 1000);
	assert_int_equal(hits("z", 1000, 0, 0, NOW), 1000);
	assert_int_equal(sb_rate_check("z", 0, 60, NOW, &ra), 0);
	assert_int_equal(ra, 0);
	/* The key itself was never counted. */
	assert_int_equal(hits("z", 10, 5, 60, NOW), 5);
	/* A NULL key is never limited. */
	assert_int_equal(hits(NULL, 10, 1, 60, NOW), 10);
	assert_int_equal(sb_rate_check(NULL, 1, 60, NOW, &ra), 0);
	/* The largest budget doesn't overflow. */
	assert_int_equal(hits("huge", 10, UINT_MAX, UINT_MAX, NOW), 10);
	assert_int_equal(hits("slow", 2, 1, UINT_MAX, UINT64_MAX), 1);
	assert_int_equal(sb_rate_hit("slow", 1, UINT_MAX, UINT64_MAX, &ra),
	    -1);
	assert_int_equal(ra, UINT_MAX);
}

static void
test_backwards(void **state)
{
	unsigned int	 ra;

	(void)state;
	/* A big step back: no longer than one interval, not the jump. */
	assert_int_equal(hits("back", 10, 5, 60, NOW), 5);
	assert_int_equal(sb_rate_hit("back", 5, 60, 1000, &ra), -1);
	assert_int_equal(ra, 12);
	assert_int_equal(sb_rate_hit("back", 5, 60, 13000, &ra), 0);
	assert_int_equal(sb_rate_hit("back", 5, 60, 13000, &ra), -1);
	/* And forward again: the old TAT is long past. */
	assert_int_equal(hits("back", 10, 5, 60, NOW), 5);

	/* A small step back within the window. */
	assert_int_equal(hits("small", 10, 5, 60, NOW), 5);
	assert_int_equal(sb_rate_hit("small", 5, 60, NOW - 500, &ra), -1);
	assert_int_equal(ra, 12);
	assert_int_equal(sb_rate_check("small", 5, 60, NOW - 500, &ra), -1);
	assert_int_equal(ra, 12);

	/* Half used, then a step back: what's left is still usable. */
	assert_int_equal(hits("half", 2, 4, 60, NOW), 2);
	assert_int_equal(hits("half", 10, 4, 60, NOW - 10000), 1);
}

static void
test_pressure(void **state)
{
	char		 key[32];
	unsigned int	 ra, i;

	(void)state;
	assert_int_equal(sb_rate_init(64), 0);

	/* A key being throttled survives a flood of one-hit keys. */
	assert_int_equal(hits("victim", 10, 5, 60, NOW), 5);
	for (i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "flood:%u", i);
		assert_int_equal(sb_rate_hit(key, 5, 60, NOW, &ra), 0);
	}
	assert_int_equal(sb_rate_hit("victim", 5, 60, NOW, &ra), -1);
	assert_int_equal(ra, 12);

	/* A key used after the flood behaves exactly. */
	assert_int_equal(hits("recent", 10, 3, 30, NOW), 3);
	assert_int_equal(sb_rate_hit("recent", 3, 30, NOW, &ra), -1);
	assert_int_equal(ra, 10);
	assert_int_equal(hits("recent", 10, 3, 30, NOW + 10000), 1);

	/*
	 * Later, everything above has expired: expired entries go first,
	 * then the keys nearest a full budget, so the one key exhausted
	 * now outlives a flood whose keys each used one hit.
	 */
	assert_int_equal(hits("recent", 10, 3, 30, NOW + 100000), 3);
	for (i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "late:%u", i);
		assert_int_equal(sb_rate_hit(key, 5, 60, NOW + 100000, &ra),
		    0);
	}
	assert_int_equal(sb_rate_hit("recent", 3, 30, NOW + 100000, &ra),
	    -1);
	assert_int_equal(ra, 10);

	/*
	 * The trade-off, documented: one slot and two keys, each evicts
	 * the other, and the limiter lets more through, never less.
	 */
	assert_int_equal(sb_rate_init(1), 0);
	assert_int_equal(hits("x", 10, 5, 60, NOW), 5);
	assert_int_equal(hits("y", 10, 5, 60, NOW), 5);
	assert_int_equal(hits("x", 10, 5, 60, NOW), 5);
	assert_int_equal(sb_rate_check("y", 5, 60, NOW, &ra), 0);
	assert_int_equal(sb_rate_check("x", 5, 60, NOW, &ra), -1);
}

/* Reads exactly len bytes; 0 or -1. */
static int
readall(int fd, void *buf, size_t len)
{
	char	*p = buf;
	ssize_t	 r;

	while (len > 0) {
		if ((r = read(fd, p, len)) == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return (-1);
		p += r;
		len -= (size_t)r;
	}
	return (0);
}

/*
 * Forks NCHILD children that wait on a common start signal, then each
 * hit key n times at the same now, also hitting a key of their own
 * every `own` hits (0: never) to race claims against the shared key.
 * Returns the total allowed for key, as reported through a pipe.
 */
static unsigned int
race(const char *key, unsigned int n, unsigned int requests, unsigned int own)
{
	pid_t		 pid[NCHILD];
	int		 go[2], res[2], st;
	unsigned int	 i, j, ok, total;
	char		 c, mine[32];

	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(res), 0);
	for (i = 0; i < NCHILD; i++) {
		pid[i] = fork();
		assert_true(pid[i] != -1);
		if (pid[i] != 0)
			continue;
		/* Child: no cmocka here, report and _exit. */
		close(go[1]);
		close(res[0]);
		if (readall(go[0], &c, 1) != -1)	/* EOF is the signal */
			_exit(2);
		for (j = 0, ok = 0; j < n; j++) {
			if (sb_rate_hit(key, requests, 3600, NOW, NULL) == 0)
				ok++;
			if (own != 0 && j % own == 0) {
				snprintf(mine, sizeof(mine), "%u:%u", i, j);
				(void)sb_rate_hit(mine, 1, 3600, NOW, NULL);
			}
		}
		if (write(res[1], &ok, sizeof(ok)) != sizeof(ok))
			_exit(3);
		_exit(0);
	}

	close(go[0]);
	close(res[1]);
	close(go[1]);				/* start */
	for (i = 0, total = 0; i < NCHILD; i++) {
		assert_int_equal(readall(res[0], &ok, sizeof(ok)), 0);
		assert_true(ok <= n);
		total += ok;
	}
	close(res[0]);
	for (i = 0; i < NCHILD; i++) {
		assert_int_equal(waitpid(pid[i], &st, 0), pid[i]);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	return (total);
}

static void
test_processes(void **state)
{
	char		 key[32];
	unsigned int	 round, ra;

	(void)state;
	/* Fresh key per round, so the children also race to claim it. */
	for (round = 0; round < 5; round++) {
		snprintf(key, sizeof(key), "shared:%u", round);
		assert_int_equal(race(key, 2000, 1000, 0), 1000);
		/* The parent sees the children's count. */
		assert_int_equal(sb_rate_check(key, 1000, 3600, NOW, &ra), -1);
		assert_int_equal(ra, 4);
	}
	/* Budget smaller than the children. */
	assert_int_equal(race("tiny", 100, 1, 0), 1);

	/*
	 * A small table churned by claims while the children count: it
	 * must stay sound (no crash, a clean exit); exactness is not
	 * promised under pressure.
	 */
	assert_int_equal(sb_rate_init(16), 0);
	(void)race("churn", 5000, 1000, 3);
	assert_int_equal(hits("after", 10, 4, 60, NOW), 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uninit),
		cmocka_unit_test_setup_teardown(test_burst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_independent, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unlimited, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_backwards, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pressure, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_processes, setup,
		    teardown),
	};

	return (cmocka_run_group_tests_name("ratelimit", tests, NULL, NULL));
}
