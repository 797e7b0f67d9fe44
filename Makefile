# socpilot - build, run, test.
#
#   make run     install what is missing, build, run the demo on the embedded
#                default (librdkafka's mock cluster in-process)
#   make test    install what is missing, build, run every test suite
#   make bench   benchmarks (figures printed; see BENCHMARKS.md)
#   make fuzz    libFuzzer harnesses (clang), short runs over the corpora
#   make SANITIZE=address,undefined   build with sanitizers (into build-san/)
#
# Sources are found by wildcard: a new module is a new .c file in one of
# the source folders; a new unit test is tests/unit/test_<name>.c.

CC      ?= cc
SANITIZE ?=
OPT     ?= -O2

SRC_DIRS := pipeline stages stages/script connectors enrich
LIBS     := -lrdkafka -ljansson -lhiredis -lcurl -lyaml -lmicrohttpd -lz -lpthread -lm

WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wformat=2 \
           -Wno-format-nonliteral
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -D_GNU_SOURCE $(WARN) -fno-strict-aliasing \
           $(addprefix -I,$(SRC_DIRS)) -I.

ifeq ($(SANITIZE),)
BUILD   := build
else
BUILD   := build-san
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif

ALL_SRCS  := $(foreach d,$(SRC_DIRS),$(wildcard $(d)/*.c))
MAIN_SRC  := pipeline/main.c
LIB_SRCS  := $(filter-out $(MAIN_SRC),$(ALL_SRCS))
LIB_OBJS  := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRCS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOL_BINS := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(TOOL_SRCS))
INTEG_SRCS := $(wildcard tests/integration/test_*.c)
INTEG_BINS := $(patsubst tests/integration/%.c,$(BUILD)/integration/%,$(INTEG_SRCS))
# Test programs are rebuilt when a shared test header changes.
TEST_HDRS  := $(wildcard tests/unit/*.h tests/tools/*.h tests/fakes/*.h)
BENCH_SRCS := $(wildcard tests/bench/*.c)
BENCH_BINS := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))

.PHONY: all deps run demo test unit unit-san integration bench fuzz clean

all: $(BUILD)/socpilot

deps:
	@sh deploy/debian-deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libsocpilot.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/socpilot: $(BUILD)/pipeline/main.o $(BUILD)/libsocpilot.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(TEST_HDRS) $(BUILD)/libsocpilot.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(BUILD)/libsocpilot.a $(LIBS)

$(BUILD)/integration/%: tests/integration/%.c $(wildcard tests/integration/*.h) $(TEST_HDRS) $(BUILD)/libsocpilot.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -Itests/integration $(LDFLAGS) -o $@ $< $(BUILD)/libsocpilot.a $(LIBS)

$(BUILD)/tools/%: tests/tools/%.c $(TEST_HDRS) $(BUILD)/libsocpilot.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libsocpilot.a $(LIBS)

$(BUILD)/bench/%: tests/bench/%.c $(TEST_HDRS) $(BUILD)/libsocpilot.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libsocpilot.a $(LIBS)

# The demo: embedded mock cluster, sample alerts in, normalized alerts and
# DLQ records out.  `make run ARGS=--keep-running` keeps it up.
LLM_ARGS := $(if $(SOCPILOT_LLM_URL),-s llm.enabled=true,)

run: deps all
	./$(BUILD)/socpilot demo -c config/demo.yaml $(LLM_ARGS) $(ARGS)

unit: all $(UNIT_BINS) $(TOOL_BINS)
	@sh tests/run-unit.sh $(BUILD)

# The unit suites again under AddressSanitizer + UndefinedBehaviorSanitizer.
unit-san:
	@$(MAKE) --no-print-directory SANITIZE=address,undefined OPT=-O1 unit

# The benchmarks are built (not run) here too, so that they keep compiling.
# test_faults runs once more under the sanitizers: its fault paths (a
# batch given up with outputs in flight) are where memory errors hide.
integration: all $(TOOL_BINS) $(INTEG_BINS) $(BENCH_BINS) $(UNIT_BINS)
	@$(MAKE) --no-print-directory SANITIZE=address,undefined OPT=-O1 \
		build-san/integration/test_faults
	@sh tests/run-integration.sh $(BUILD)

# Builds use every core (JOBS); the suites themselves run one at a time.
JOBS ?= $(shell nproc 2>/dev/null || echo 1)

test: deps
	@$(MAKE) --no-print-directory -j$(JOBS) unit
	@$(MAKE) --no-print-directory -j$(JOBS) unit-san
	@$(MAKE) --no-print-directory -j$(JOBS) integration

bench: deps all $(BENCH_BINS)
	@sh tests/bench/run.sh $(BUILD)

FUZZ_SRCS := $(wildcard tests/fuzz/*_fuzz.c)
fuzz: deps
	@sh tests/fuzz/run.sh

clean:
	rm -rf build build-san build-fuzz

-include $(LIB_OBJS:.o=.d) $(BUILD)/pipeline/main.d
