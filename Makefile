# Switchboard build.
#
#   make            build everything (kore, host, plugins, test plugins)
#   make run        quick start: deps, build, private PostgreSQL, run
#   make test       every test layer; ends with "N passed, N failed"
#   make sanitize   the same build with ASan/UBSan into build/asan
#   make install    public headers + pkg-config file (PREFIX=/usr/local)
#   make deps       install the Debian packages (idempotent)
#   make rotate-keys re-seal every sealed value under the current data key

include mk/kore.mk

CC	?= cc
CXX	?= g++
PREFIX	?= /usr/local
B	?= build
SAN	?=

VERSION	:= $(shell cat VERSION)
PKGS	:= libpq jansson libcurl libjwt openssl libargon2

WARN	:= -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes \
	   -Wmissing-declarations -Wshadow -Wpointer-arith -Wcast-qual \
	   -Wsign-compare -Wformat=2 -Wno-unused-parameter \
	   -Wno-format-truncation
CSTD	:= -std=gnu11 -D_GNU_SOURCE
# src/*.cc (the libphonenumber shim): the C++-valid subset of WARN.
CXXSTD	:= -std=gnu++17 -D_GNU_SOURCE
CXXWARN	:= $(filter-out -Wstrict-prototypes -Wmissing-prototypes,$(WARN))
PHONE_LIBS	:= -lphonenumber -lprotobuf -lstdc++
OPT	:= -O2 -g
ifneq ($(SAN),)
OPT	:= -O1 -g -fno-omit-frame-pointer -fsanitize=$(SAN) \
	   -fno-sanitize-recover=all
endif

KORE_DIR	:= $(B)/kore-src
KORE_BIN	:= $(B)/kore
KORE_FEAT	:= $(B)/kore.features
KORE_CFLAGS	 = $(shell cat $(KORE_FEAT) 2>/dev/null) -I$(KORE_DIR)/include

PKG_CFLAGS	:= $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS	:= $(shell pkg-config --libs $(PKGS) 2>/dev/null)

HOST_SRC	:= $(wildcard src/*.c)
HOST_CXX_SRC	:= $(wildcard src/*.cc)
HOST_OBJ	:= $(HOST_SRC:src/%.c=$(B)/obj/%.o) \
		   $(HOST_CXX_SRC:src/%.cc=$(B)/obj/%.o)
HOST_SO		:= $(B)/switchboard.so

PLUGIN_DIRS	:= $(patsubst %/,%,$(dir $(wildcard plugins/*/Makefile.inc)))
PLUGIN_NAMES	:= $(notdir $(PLUGIN_DIRS))
PLUGIN_SO	:= $(PLUGIN_NAMES:%=$(B)/plugins/%.so)

TPLUGIN_SRC	:= $(wildcard tests/plugins/*.c)
TPLUGIN_SO	:= $(TPLUGIN_SRC:tests/plugins/%.c=$(B)/tests/plugins/%.so)

UNIT_SRC	:= $(wildcard tests/unit/test_*.c)
UNIT_BIN	:= $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)

PLUGIN_CFLAGS	:= $(CSTD) $(WARN) $(OPT) -fPIC -fvisibility=hidden -Iinclude \
		   $(shell pkg-config --cflags jansson)
PLUGIN_LDFLAGS	:= -shared $(shell pkg-config --libs jansson)

.PHONY: all build run test sanitize install uninstall deps clean assets \
	unit bench fuzz check-abi rotate-keys

all: build

build: $(KORE_BIN) $(HOST_SO) $(PLUGIN_SO) $(TPLUGIN_SO) $(UNIT_BIN) assets

# --- Kore -----------------------------------------------------------------
# Built from the Debian-shipped source with the pinned feature flags.  The
# features file it writes is what every Kore-including object compiles with.
# The sanitizer build gives Kore itself ASan only: Kore's pool allocator
# makes misaligned accesses UBSan would stop on.  Our code gets both.
$(KORE_BIN) $(KORE_FEAT) &: mk/kore.mk $(wildcard patches/kore/*.patch)
	@rm -rf $(KORE_DIR) && mkdir -p $(B) && cp -r $(KORE_SRC) $(KORE_DIR)
	@for p in $(sort $(wildcard patches/kore/*.patch)); do \
		patch -s -d $(KORE_DIR) -p1 < $$p || exit 1; done
	@echo "KORE $(KORE_FEATURES) $(if $(SAN),SANITIZE=address)"
	@$(MAKE) -s -C $(KORE_DIR) kore $(KORE_FEATURES) \
		$(if $(SAN),SANITIZE=address) >/dev/null
	@cp $(KORE_DIR)/kore $(KORE_BIN)
	@cp $(KORE_DIR)/kore.features $(KORE_FEAT)

# --- Host -------------------------------------------------------------------
$(B)/obj/%.o: src/%.c $(wildcard src/*.h) include/switchboard/plugin.h $(KORE_FEAT) VERSION
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(CSTD) $(WARN) $(OPT) -fPIC $(KORE_CFLAGS) -Iinclude -Isrc \
		-DSB_VERSION='"$(VERSION)"' \
		$(PKG_CFLAGS) -c $< -o $@

# C++ objects include no Kore and no C header but their own (phone.h).
$(B)/obj/%.o: src/%.cc $(wildcard src/*.h)
	@mkdir -p $(dir $@)
	@echo "CXX $<"
	@$(CXX) $(CXXSTD) $(CXXWARN) $(OPT) -fPIC -Iinclude -Isrc -c $< -o $@

$(HOST_SO): $(HOST_OBJ)
	@echo "LD $@"
	@$(CC) -shared $(OPT) -o $@ $(HOST_OBJ) $(PKG_LIBS) $(PHONE_LIBS) -ldl

# --- Plugins --------------------------------------------------------------
# Each plugins/<name>/ has a Makefile.inc naming its sources (<name>_SRC).
include $(wildcard plugins/*/Makefile.inc)

$(B)/plugins/%.so: include/switchboard/plugin.h include/switchboard/helpers.h
	@mkdir -p $(dir $@)
	@echo "CC $@"
	@$(CC) $(PLUGIN_CFLAGS) $($*_CFLAGS) -o $@ $($*_SRC) \
		$(PLUGIN_LDFLAGS) $($*_LIBS)

$(B)/tests/plugins/%.so: tests/plugins/%.c include/switchboard/plugin.h \
    $(wildcard tests/plugins/*.h)
	@mkdir -p $(dir $@)
	@echo "CC $@"
	@$(CC) $(PLUGIN_CFLAGS) -o $@ $< $(PLUGIN_LDFLAGS) $(TPLUGIN_LIBS_$*)

# Libraries a test plugin links beyond jansson.
TPLUGIN_LIBS_uploader	:= -lcrypto

# --- Unit tests (pure code, no Kore) ---------------------------------------
UNIT_DEPS_test_router	:= src/router.c src/text.c
UNIT_DEPS_test_validate	:= src/validate.c src/text.c
UNIT_DEPS_test_conf	:= src/conf.c src/text.c
UNIT_DEPS_test_abi	:= src/abi.c
UNIT_DEPS_test_ratelimit	:= src/ratelimit.c
UNIT_DEPS_test_seal	:= src/seal.c src/text.c
UNIT_DEPS_test_edge	:= src/edge.c
UNIT_DEPS_test_phone	:= $(B)/obj/phone.o
UNIT_LIBS_test_phone	:= $(PHONE_LIBS)
UNIT_DEPS_test_mediaprobe	:= plugins/media/zipcheck.c plugins/media/probe.c
UNIT_LIBS_test_mediaprobe	:= -lm
UNIT_DEPS_test_telephony	:= plugins/telephony/segments.c \
	plugins/telephony/routing.c plugins/telephony/form.c
UNIT_DEPS_test_whatsapp	:= plugins/whatsapp/payload.c

.SECONDEXPANSION:
$(B)/tests/test_%: tests/unit/test_%.c $$(UNIT_DEPS_test_$$*) $(wildcard src/*.h) \
    include/switchboard/plugin.h
	@mkdir -p $(dir $@)
	@echo "CC $@"
	@$(CC) $(CSTD) $(WARN) $(OPT) -Iinclude -Isrc $(PKG_CFLAGS) -o $@ $< \
		$(UNIT_DEPS_test_$*) -lcmocka $(PKG_LIBS) $(UNIT_LIBS_test_$*)

# --- Assets: the console and the offline OpenAPI viewer ---------------------
assets: $(B)/assets.stamp

$(B)/assets.stamp: package.json package-lock.json scripts/assets.sh
	@mkdir -p $(B)
	@scripts/assets.sh
	@touch $@

# --- Entry points ---------------------------------------------------------
deps:
	scripts/deps.sh

run:
	scripts/run.sh

test:
	scripts/test.sh

rotate-keys:
	scripts/rotate-keys.sh

sanitize:
	$(MAKE) B=build/asan SAN=address,undefined build

bench: build $(B)/bench/bare.so
	bench/run.sh
	bench/jobs.sh
	bench/concierge.sh
	bench/telephony.sh
	bench/whatsapp.sh

fuzz:
	FUZZ_SECONDS=$${FUZZ_SECONDS:-300} scripts/fuzz.sh

install: include/switchboard/plugin.h include/switchboard/helpers.h \
    $(wildcard include/switchboard/services/*.h)
	install -d $(DESTDIR)$(PREFIX)/include/switchboard
	install -m 0644 include/switchboard/plugin.h include/switchboard/helpers.h \
		$(DESTDIR)$(PREFIX)/include/switchboard/
	install -d $(DESTDIR)$(PREFIX)/include/switchboard/services
	install -m 0644 include/switchboard/services/*.h \
		$(DESTDIR)$(PREFIX)/include/switchboard/services/
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig
	sed -e 's|@PREFIX@|$(PREFIX)|g' \
	    -e 's|@VERSION@|$(VERSION)|g' switchboard.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/switchboard.pc

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/include/switchboard
	rm -f $(DESTDIR)$(PREFIX)/lib/pkgconfig/switchboard.pc

clean:
	rm -rf build

# --- Benchmark baseline: a bare Kore module built the same way -------------
$(B)/bench/bare.so: bench/bare/bare.c $(KORE_FEAT)
	@mkdir -p $(dir $@)
	@echo "CC $@"
	@$(CC) $(CSTD) $(WARN) $(OPT) -fPIC -shared $(KORE_CFLAGS) -o $@ $<
