# herald — one non-recursive Makefile. Objects by folder under $(BUILD)/.
#   make            build every binary (-O2 -g, warnings are errors)
#   make test       unit + integration tests, then the same suite under ASan+UBSan
#   make run        a local cluster (Redis, router, gateways)
#   make fuzz       libFuzzer targets (clang), FUZZ_SECONDS each
#   make bench      the benchmark suite; writes docs/benchmarks.md
#   make deps       the Debian packages (apt-get as root, else the command to run)

BUILD    ?= build
SANITIZE ?=
CC       ?= cc
SSL_INC  := /usr/include/android
SSL_LIB  := /usr/lib/x86_64-linux-gnu/android

WARN     := -Wall -Wextra -Wstrict-prototypes -Wundef -Wpointer-arith -Wshadow \
            -Wnull-dereference -Werror
CFLAGS   ?= -O2 -g
CPPFLAGS := -D_GNU_SOURCE -I. -Icommon -I$(BUILD)/gen -isystem $(SSL_INC) -MMD -MP
ALLCFLAGS = -std=gnu11 -pthread $(WARN) $(CFLAGS) $(CPPFLAGS)
LIBS     := -L$(SSL_LIB) -Wl,-rpath,$(SSL_LIB) -lssl -lcrypto -luring -lhiredis \
            -lprotobuf-c -lcjson -lpthread -lm
# mimalloc is every binary's allocator (linked first, it overrides malloc).
# Under the sanitizers ASan owns malloc, so mimalloc stays out.
ifeq ($(SANITIZE),)
MALLOC   := -lmimalloc
else
ALLCFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDSAN    := -fsanitize=$(SANITIZE)
MALLOC   :=
endif

PROTOS   := $(wildcard proto/*.proto)
GEN_C    := $(PROTOS:%.proto=$(BUILD)/gen/%.pb-c.c)
GEN_H    := $(GEN_C:.c=.h)
GEN_O    := $(GEN_C:.c=.o)

COMMON_O := $(patsubst %.c,$(BUILD)/%.o,$(wildcard common/*.c)) $(GEN_O)
GW_O     := $(patsubst %.c,$(BUILD)/%.o,$(filter-out gateway/main.c,$(wildcard gateway/*.c)))
RT_O     := $(patsubst %.c,$(BUILD)/%.o,$(filter-out router/main.c,$(wildcard router/*.c)))
LD_O     := $(patsubst %.c,$(BUILD)/%.o,$(filter-out loadtest/main.c,$(wildcard loadtest/*.c)))

BINS     := $(BUILD)/herald-gateway $(BUILD)/herald-router $(BUILD)/herald-load $(BUILD)/herald-ceiling

UNIT_SRC := $(wildcard tests/unit/*/test_*.c)
UNIT_BIN := $(UNIT_SRC:%.c=$(BUILD)/%)
ITEST_LIB_O := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/integration/lib/*.c))
ITEST_SRC := $(wildcard tests/integration/test_*.c)
ITEST_BIN := $(ITEST_SRC:%.c=$(BUILD)/%)

.SECONDARY: $(GEN_C) $(GEN_H)
.PHONY: all test unit integration test-asan run fuzz bench bench-quick deps clean compose-test
all: $(BINS)

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: %.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen $<

$(BUILD)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	$(CC) $(ALLCFLAGS) -Wno-shadow -c $< -o $@

$(BUILD)/%.o: %.c | $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -c $< -o $@

$(BUILD)/herald-gateway: $(BUILD)/gateway/main.o $(GW_O) $(COMMON_O)
	$(CC) $(LDSAN) -pthread -o $@ $^ $(MALLOC) $(LIBS)
$(BUILD)/herald-router: $(BUILD)/router/main.o $(RT_O) $(COMMON_O)
	$(CC) $(LDSAN) -pthread -o $@ $^ $(MALLOC) $(LIBS)
$(BUILD)/herald-load: $(BUILD)/loadtest/main.o $(LD_O) $(COMMON_O)
	$(CC) $(LDSAN) -pthread -o $@ $^ $(MALLOC) $(LIBS)
# The loopback send ceiling that make bench compares herald's fan-out with.
$(BUILD)/herald-ceiling: $(BUILD)/bench/ceiling.o $(BUILD)/common/cm_bufring.o $(BUILD)/common/cm_flags.o $(BUILD)/common/cm_log.o $(BUILD)/common/cm_net.o
	$(CC) $(LDSAN) -pthread -o $@ $^ -luring

# A unit test links the objects of the folder it mirrors (tests/unit/<folder>/).
# test_cm_alloc also links the allocator it tunes (nothing under the sanitizers).
$(BUILD)/tests/unit/common/test_cm_alloc: $(BUILD)/tests/unit/common/test_cm_alloc.o $(COMMON_O)
	$(CC) $(LDSAN) -pthread -o $@ $^ -lcriterion $(MALLOC) $(LIBS)
$(BUILD)/tests/unit/common/%: $(BUILD)/tests/unit/common/%.o $(COMMON_O)
	$(CC) $(LDSAN) -pthread -o $@ $^ -lcriterion $(LIBS)
$(BUILD)/tests/unit/gateway/%: $(BUILD)/tests/unit/gateway/%.o $(GW_O) $(COMMON_O)
	$(CC) $(LDSAN) -pthread -o $@ $^ -lcriterion $(LIBS)
$(BUILD)/tests/unit/router/%: $(BUILD)/tests/unit/router/%.o $(RT_O) $(COMMON_O)
	$(CC) $(LDSAN) -pthread -o $@ $^ -lcriterion $(LIBS)
$(BUILD)/tests/unit/loadtest/%: $(BUILD)/tests/unit/loadtest/%.o $(LD_O) $(COMMON_O)
	$(CC) $(LDSAN) -pthread -o $@ $^ -lcriterion $(LIBS)
$(BUILD)/tests/integration/%: $(BUILD)/tests/integration/%.o $(ITEST_LIB_O) $(COMMON_O)
	$(CC) $(LDSAN) -pthread -o $@ $^ -lcriterion $(LIBS)

unit: $(UNIT_BIN)
	@bash tests/run-suite.sh unit $(UNIT_BIN)

integration: $(BINS) $(ITEST_BIN)
	@HERALD_BUILD=$(BUILD) bash tests/run-suite.sh integration $(ITEST_BIN)

# The whole suite, then once more built with ASan+UBSan in build/asan.
test: all
	$(MAKE) --no-print-directory unit integration
	$(MAKE) --no-print-directory BUILD=build/asan SANITIZE=address,undefined CFLAGS="-O1 -g" unit integration

run: all
	bash deploy/local-cluster.sh

FUZZ_SECONDS ?= 30
fuzz:
	bash tests/fuzz/run.sh $(FUZZ_SECONDS)

bench: all
	bash bench/run.sh full
bench-quick: all
	bash bench/run.sh quick

compose-test:
	bash deploy/compose-test.sh

deps:
	@bash deploy/deps.sh

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
