# The Kore feature flags, pinned in one place.  Kore compiles silently with
# mismatched flags but sizeof(struct http_request) changes (592 bytes with
# none, 616 with CURL+PGSQL+TASKS), so the host and every object that
# includes <kore/kore.h> take their -D flags from the features file this
# build of Kore writes (build/kore.features), never from a second list.
KORE_FEATURES := CURL=1 PGSQL=1 TASKS=1
KORE_SRC      ?= /usr/share/kore
