/*
 * Node-wide rate limits: GCRA over a fixed table in shared memory.
 *
 * GCRA (the generic cell rate algorithm, the token bucket written as a
 * single timestamp) keeps one number per key, the theoretical arrival
 * time (TAT): the moment the key's budget is full again.  Each hit pushes
 * the TAT one emission interval T = seconds / requests into the future,
 * starting from now if the TAT already lies behind; the hit is allowed
 * when the new TAT is at most requests * T (about `seconds`) ahead.  So a
 * fresh key has a burst of exactly `requests`, then earns one hit back
 * every T: any window of `seconds` passes at most 2 * requests - 1 hits
 * (a full burst, then the refill), and over a long run requests per
 * seconds.  One word per key is what makes a lock-free count exact
 * across processes: each hit is one compare-and-swap on the TAT, and a
 * CAS that fails means another worker's hit went in first, so we decide
 * again against the new value.  Nothing is ever held, so a worker killed
 * mid-call costs at most the hit it was counting.
 *
 * The table is open addressing with a short linear probe.  A slot is
 * { fingerprint, TAT }: the fingerprint is a keyed SipHash of the key,
 * with the key drawn at init, so a client choosing key strings can
 * neither make its key share a budget with someone else's nor aim its
 * keys at the probe window of a key it wants evicted.  Slots never
 * become empty again; a key that finds no room takes the probed slot
 * with the smallest TAT: an expired one if there is one (nothing is
 * lost), otherwise the key closest to a full budget.  So under table
 * pressure a key may lose history, which only lets more through, never
 * blocks an innocent key, and the keys being throttled hardest are the
 * last to go.  Taking a slot resets its TAT before changing its owner,
 * so a racing hit on the old key sees a fresh budget (more permissive)
 * and the new key inherits at most the few hits in flight at that
 * moment, never the old key's history.  A hit whose key loses the race
 * for a slot CLAIM_TRIES times in a row is let through rather than
 * spin: failing open, like everything else under pressure.
 *
 * Time is kept in microseconds so that T stays exact enough for any
 * sensible budget; rates above a million per second are rounded down to
 * that.
 */

#include <sys/mman.h>
#include <sys/random.h>

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ratelimit.h"

#define PROBE		8		/* slots looked at per key */
#define CLAIM_TRIES	8		/* then the hit is let through */
#define US_PER_S	1000000ULL
/* Far beyond any clock; keeps now + limit + T well inside 64 bits. */
#define NOW_MS_MAX	(UINT64_MAX / 4000)

/*
 * The workers share these words through the mapping; atomics that fell
 * back to libatomic's locks would lock per process, not per node.
 */
_Static_assert(__atomic_always_lock_free(sizeof(uint64_t), 0),
    "64-bit atomics must be lock-free to be shared across processes");

struct slot {
	uint64_t		 fp;	/* 0: never used */
	uint64_t		 tat;	/* microseconds; 0: full budget */
};

/* Process-local; the parent sets it before the fork, workers inherit. */
static struct {
	struct slot		*slots;
	size_t			 mask;
	size_t			 len;	/* of the mapping, in bytes */
	uint64_t		 k0;
	uint64_t		 k1;
} rl;

static uint64_t		 le64(const unsigned char *);
static void		 sipround(uint64_t *);
static uint64_t		 siphash(const unsigned char *, size_t, uint64_t,
			    uint64_t);
static uint64_t		 fingerprint(const char *);
static size_t		 probe_len(void);
static struct slot	*slot_find(uint64_t);
static struct slot	*slot_get(uint64_t);
static int		 decide(uint64_t, uint64_t, uint64_t, uint64_t,
			    uint64_t *, unsigned int *);
static int		 limited(const char *, unsigned int, unsigned int,
			    uint64_t *, uint64_t *, uint64_t *, uint64_t *,
			    unsigned int *);

int
sb_rate_init(size_t slots)
{
	struct slot	*map;
	uint64_t	 key[2];
	size_t		 n, len;

	if (slots == 0)
		return (-1);
	for (n = 1; n < slots; n <<= 1) {
		if (n > SIZE_MAX / 2 / sizeof(struct slot))
			return (-1);
	}
	len = n * sizeof(struct slot);

	/* Before the fork: the workers' seccomp filter need not allow it. */
	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key))
		return (-1);
	map = mmap(NULL, len, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		return (-1);

	sb_rate_free();
	rl.slots = map;
	rl.mask = n - 1;
	rl.len = len;
	rl.k0 = key[0];
	rl.k1 = key[1];
	return (0);
}

void
sb_rate_free(void)
{
	if (rl.slots != NULL)
		(void)munmap(rl.slots, rl.len);
	memset(&rl, 0, sizeof(rl));
}

int
sb_rate_hit(const char *key, unsigned int requests, unsigned int seconds,
    uint64_t now_ms, unsigned int *retry_after)
{
	struct slot	*s;
	uint64_t	 fp, now, t, limit, tat, next;
	int		 rc;

	if (!limited(key, requests, seconds, &now_ms, &fp, &t, &limit,
	    retry_after))
		return (0);
	now = now_ms * 1000;

	/* No slot after CLAIM_TRIES lost races: fail open. */
	if ((s = slot_get(fp)) == NULL)
		return (0);

	tat = __atomic_load_n(&s->tat, __ATOMIC_SEQ_CST);
	for (;;) {
		if ((rc = decide(tat, now, t, limit, &next, retry_after)) ==
		    -1) {
			if (tat <= now + limit)
				return (-1);
			/*
			 * The clock stepped back: store the clamp decide()
			 * assumed, or the key would stay exhausted until the
			 * clock caught up with the old TAT.
			 */
			next = now + limit;
		}
		/* On failure tat is reloaded: another hit went in. */
		if (__atomic_compare_exchange_n(&s->tat, &tat, next, 0,
		    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			return (rc);
	}
}

int
sb_rate_check(const char *key, unsigned int requests, unsigned int seconds,
    uint64_t now_ms, unsigned int *retry_after)
{
	struct slot	*s;
	uint64_t	 fp, now, t, limit, tat, next;

	if (!limited(key, requests, seconds, &now_ms, &fp, &t, &limit,
	    retry_after))
		return (0);
	now = now_ms * 1000;

	/* An unknown key has its full budget; don't take a slot for it. */
	if ((s = slot_find(fp)) == NULL)
		return (0);
	tat = __atomic_load_n(&s->tat, __ATOMIC_SEQ_CST);
	return (decide(tat, now, t, limit, &next, retry_after));
}

void
sb_rate_reset(const char *key)
{
	struct slot	*s;
	uint64_t	 fp;
	size_t		 i, n;

	if (rl.slots == NULL || key == NULL)
		return;
	fp = fingerprint(key);

	/* Every copy: a lost claim race can leave the key in two slots. */
	n = probe_len();
	for (i = 0; i < n; i++) {
		s = &rl.slots[(fp + i) & rl.mask];
		if (__atomic_load_n(&s->fp, __ATOMIC_SEQ_CST) == fp)
			__atomic_store_n(&s->tat, 0, __ATOMIC_SEQ_CST);
	}
}

/*
 * The shared prologue of hit and check: 0 when the call is not limited
 * at all (and *retry_after is set to 0), else 1 with the key's
 * fingerprint, the clamped clock, the emission interval and the burst
 * tolerance, all in microseconds.
 */
static int
limited(const char *key, unsigned int requests, unsigned int seconds,
    uint64_t *now_ms, uint64_t *fp, uint64_t *t, uint64_t *limit,
    unsigned int *retry_after)
{
	if (retry_after != NULL)
		*retry_after = 0;
	if (rl.slots == NULL || key == NULL || requests == 0 || seconds == 0)
		return (0);

	*fp = fingerprint(key);
	if (*now_ms > NOW_MS_MAX)
		*now_ms = NOW_MS_MAX;
	if ((*t = seconds * US_PER_S / requests) == 0)
		*t = 1;
	/* Not seconds * US_PER_S: T is rounded, the burst must stay exact. */
	*limit = *t * requests;
	return (1);
}

/*
 * GCRA on one loaded TAT: 0 with the TAT to store in *next, or -1 with
 * the wait in *retry_after.
 */
static int
decide(uint64_t tat, uint64_t now, uint64_t t, uint64_t limit,
    uint64_t *next, unsigned int *retry_after)
{
	uint64_t	 wait;

	/*
	 * A TAT more than a full budget ahead can only come from a clock
	 * that stepped back.  Treat the key as exhausted as of the new
	 * clock, which is where a shorter step would have left it: it
	 * waits one interval, not however far the clock jumped.
	 */
	if (tat > now + limit)
		tat = now + limit;
	*next = (tat > now ? tat : now) + t;
	if (*next - now <= limit)
		return (0);

	if (retry_after != NULL) {
		wait = *next - limit - now;
		wait = (wait + US_PER_S - 1) / US_PER_S;
		*retry_after = wait > UINT_MAX ? UINT_MAX : (unsigned int)wait;
	}
	return (-1);
}

static size_t
probe_len(void)
{
	return (rl.mask + 1 < PROBE ? rl.mask + 1 : PROBE);
}

/*
 * The key's slot, or NULL.  Slots are claimed first-empty-first and
 * never emptied, so the key cannot sit beyond an empty slot of its own
 * probe: the scan stops there.
 */
static struct slot *
slot_find(uint64_t fp)
{
	struct slot	*s;
	uint64_t	 f;
	size_t		 i, n;

	n = probe_len();
	for (i = 0; i < n; i++) {
		s = &rl.slots[(fp + i) & rl.mask];
		f = __atomic_load_n(&s->fp, __ATOMIC_SEQ_CST);
		if (f == fp)
			return (s);
		if (f == 0)
			break;
	}
	return (NULL);
}

/*
 * The key's slot, claimed if need be: the first empty slot of the probe,
 * else the one with the smallest TAT.  NULL when other processes won the
 * race for the probe CLAIM_TRIES times in a row.
 *
 * Sequentially consistent atomics throughout: a claim changes two words
 * (TAT, then owner) and a racing hit must see them in that order.
 */
static struct slot *
slot_get(uint64_t fp)
{
	struct slot	*s, *empty, *victim;
	uint64_t	 f, vf, tat, vtat;
	size_t		 i, n, try;

	n = probe_len();
	for (try = 0; try < CLAIM_TRIES; try++) {
		empty = victim = NULL;
		vf = vtat = 0;
		for (i = 0; i < n; i++) {
			s = &rl.slots[(fp + i) & rl.mask];
			f = __atomic_load_n(&s->fp, __ATOMIC_SEQ_CST);
			if (f == fp)
				return (s);
			if (f == 0) {
				empty = s;
				break;
			}
			tat = __atomic_load_n(&s->tat, __ATOMIC_SEQ_CST);
			if (victim == NULL || tat < vtat) {
				victim = s;
				vf = f;
				vtat = tat;
			}
		}

		if (empty != NULL) {
			f = 0;
			/* Lost to the same key claiming it: share it. */
			if (__atomic_compare_exchange_n(&empty->fp, &f, fp, 0,
			    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) || f == fp)
				return (empty);
			continue;
		}

		/*
		 * Reset the TAT we judged, then take the slot if its owner
		 * is still the one we judged; either step failing means the
		 * slot moved on, so look again.  A reset whose owner change
		 * then fails only gave that owner a fresh budget.
		 */
		if (!__atomic_compare_exchange_n(&victim->tat, &vtat, 0, 0,
		    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			continue;
		if (__atomic_compare_exchange_n(&victim->fp, &vf, fp, 0,
		    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			return (victim);
	}
	return (NULL);
}

/* Never 0, which marks an unused slot. */
static uint64_t
fingerprint(const char *key)
{
	uint64_t	 h;

	h = siphash((const unsigned char *)key, strlen(key), rl.k0, rl.k1);
	return (h == 0 ? 1 : h);
}

static uint64_t
le64(const unsigned char *p)
{
	uint64_t	 v;
	size_t		 i;

	for (v = 0, i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return (v);
}

#define ROTL(x, b)	(((x) << (b)) | ((x) >> (64 - (b))))

static void
sipround(uint64_t *v)
{
	v[0] += v[1]; v[1] = ROTL(v[1], 13); v[1] ^= v[0];
	v[0] = ROTL(v[0], 32);
	v[2] += v[3]; v[3] = ROTL(v[3], 16); v[3] ^= v[2];
	v[0] += v[3]; v[3] = ROTL(v[3], 21); v[3] ^= v[0];
	v[2] += v[1]; v[1] = ROTL(v[1], 17); v[1] ^= v[2];
	v[2] = ROTL(v[2], 32);
}

/* SipHash-2-4 (Aumasson, Bernstein): a keyed hash made for tables. */
static uint64_t
siphash(const unsigned char *in, size_t len, uint64_t k0, uint64_t k1)
{
	uint64_t	 v[4], m;
	size_t		 i, tail;

	v[0] = 0x736f6d6570736575ULL ^ k0;
	v[1] = 0x646f72616e646f6dULL ^ k1;
	v[2] = 0x6c7967656e657261ULL ^ k0;
	v[3] = 0x7465646279746573ULL ^ k1;

	tail = len - len % 8;
	for (i = 0; i < tail; i += 8) {
		m = le64(in + i);
		v[3] ^= m;
		sipround(v);
		sipround(v);
		v[0] ^= m;
	}
	m = (uint64_t)len << 56;
	for (i = 0; i < len % 8; i++)
		m |= (uint64_t)in[tail + i] << (8 * i);
	v[3] ^= m;
	sipround(v);
	sipround(v);
	v[0] ^= m;

	v[2] ^= 0xff;
	for (i = 0; i < 4; i++)
		sipround(v);
	return (v[0] ^ v[1] ^ v[2] ^ v[3]);
}
