/* admin_ratelimit.c: failed admin logins, counted per client IP and per
 * username in a fixed-size table of this process (bounded memory whatever an
 * attacker sends). A key that reached its limit within the window is refused
 * until the window, which starts at its first failure, is over. When the table
 * is full the entry seen least recently is reused.
 *
 * Per process: with N httpd children an attacker spread over connections gets
 * at most N times the limit; the argon2id cost of each attempt still applies.
 * A static pthread mutex guards the table (no init call, safe under any MPM). */
#include <pthread.h>
#include <apr_strings.h>
#include "relay_admin.h"

#define RL_SLOTS     1024
#define RL_KEY_LEN   80
#define RL_WINDOW_MS (15 * 60 * 1000)
#define RL_MAX_USER  5  /* failures per username per window */
#define RL_MAX_IP    20 /* failures per client IP per window */

typedef struct {
    char key[RL_KEY_LEN]; /* "u:<username>" or "i:<ip>"; "" = free */
    apr_int64_t first_ms;
    apr_int64_t last_ms;
    int count;
} rl_slot_t;

static rl_slot_t rl_slots[RL_SLOTS];
static pthread_mutex_t rl_mutex = PTHREAD_MUTEX_INITIALIZER;

static void rl_key(char *buf, char kind, const char *s)
{
    apr_snprintf(buf, RL_KEY_LEN, "%c:%s", kind, s ? s : "");
}

static rl_slot_t *rl_find(const char *key)
{
    int i;

    for (i = 0; i < RL_SLOTS; ++i) {
        if (rl_slots[i].key[0] && strcmp(rl_slots[i].key, key) == 0) {
            return &rl_slots[i];
        }
    }
    return NULL;
}

/* A free, expired or least recently used slot for @a key. */
static rl_slot_t *rl_take(const char *key, apr_int64_t now)
{
    rl_slot_t *best = &rl_slots[0];
    int i;

    for (i = 0; i < RL_SLOTS; ++i) {
        rl_slot_t *s = &rl_slots[i];
        if (s->key[0] == '\0' || now - s->first_ms >= RL_WINDOW_MS) {
            best = s;
            break;
        }
        if (s->last_ms < best->last_ms) {
            best = s;
        }
    }
    apr_cpystrn(best->key, key, RL_KEY_LEN);
    best->first_ms = now;
    best->last_ms = now;
    best->count = 0;
    return best;
}

/* Milliseconds until @a key may try again (0: now). */
static apr_int64_t rl_wait(const char *key, int max, apr_int64_t now)
{
    rl_slot_t *s = rl_find(key);

    if (s == NULL || s->count < max || now - s->first_ms >= RL_WINDOW_MS) {
        return 0;
    }
    return s->first_ms + RL_WINDOW_MS - now;
}

apr_int64_t admin_ratelimit_check(const char *ip, const char *username, apr_int64_t now)
{
    char ki[RL_KEY_LEN], ku[RL_KEY_LEN];
    apr_int64_t wi, wu;

    rl_key(ki, 'i', ip);
    rl_key(ku, 'u', username);
    pthread_mutex_lock(&rl_mutex);
    wi = rl_wait(ki, RL_MAX_IP, now);
    wu = rl_wait(ku, RL_MAX_USER, now);
    pthread_mutex_unlock(&rl_mutex);
    return wi > wu ? wi : wu;
}

static void rl_count(const char *key, apr_int64_t now)
{
    rl_slot_t *s = rl_find(key);

    if (s == NULL || now - s->first_ms >= RL_WINDOW_MS) {
        s = s ? s : rl_take(key, now);
        s->first_ms = now;
        s->count = 0;
    }
    s->count++;
    s->last_ms = now;
}

void admin_ratelimit_failed(const char *ip, const char *username, apr_int64_t now)
{
    char ki[RL_KEY_LEN], ku[RL_KEY_LEN];

    rl_key(ki, 'i', ip);
    rl_key(ku, 'u', username);
    pthread_mutex_lock(&rl_mutex);
    rl_count(ki, now);
    rl_count(ku, now);
    pthread_mutex_unlock(&rl_mutex);
}

/* A correct password clears the username's count (not the IP's: one valid
 * account must not reset an attacker's budget for guessing others). */
void admin_ratelimit_succeeded(const char *username)
{
    char ku[RL_KEY_LEN];
    rl_slot_t *s;

    rl_key(ku, 'u', username);
    pthread_mutex_lock(&rl_mutex);
    if ((s = rl_find(ku)) != NULL) {
        s->key[0] = '\0';
    }
    pthread_mutex_unlock(&rl_mutex);
}
