# xlb - top-level build.  Everything is built out of tree under $(BUILD).
#   make               build BPF objects, skeletons, libraries and binaries
#   make check         install missing packages, then run every test suite
#   make demo          run the demo topology
#   make bench         data-plane and Maglev benchmarks
#   make vmlinux       regenerate vmlinux/vmlinux.h from the running kernel's BTF
#   make SANITIZE=1    userspace with AddressSanitizer + UndefinedBehaviorSanitizer
#   make V=1           show the commands

BUILD    ?= build
CC       ?= gcc
CLANG    ?= clang
BPFTOOL  ?= bpftool
PREFIX   ?= /usr/local

ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-8s %s\n' $(1) $(2)
endif

.DELETE_ON_ERROR:
.SECONDARY:
.SUFFIXES:

CFLAGS   ?= -O2 -g
XCFLAGS  := -std=gnu11 -Wall -Wextra -Werror -MMD -MP \
            -Ibpf -Icommon -Iloader -Iagent -Itests/lib -Itests/tools -I$(BUILD)
LDLIBS   := -lxdp -lbpf -lelf -lz -ljansson -lyaml -luv -lssl -lcrypto -lm
ifeq ($(SANITIZE),1)
XCFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=address,undefined
endif

# -fno-strict-aliasing: headers are rewritten through struct fields and then
# summed as words for checksums; the compiler must not reorder those.
BPF_CFLAGS := -O2 -g -target bpf -D__TARGET_ARCH_x86 -Wall -Werror -fno-strict-aliasing \
              -Ivmlinux -Ibpf -MMD -MP

BPF_PROGS := xlb decap bench
BPF_OBJS  := $(BPF_PROGS:%=$(BUILD)/bpf/%.bpf.o)
SKELS     := $(BPF_PROGS:%=$(BUILD)/%.skel.h)

COMMON_SRCS := $(wildcard common/*.c)
LOADER_SRCS := $(wildcard loader/*.c)
OBJ         := $(BUILD)/obj
LIB_OBJS    := $(COMMON_SRCS:%.c=$(OBJ)/%.o) $(LOADER_SRCS:%.c=$(OBJ)/%.o)
LIB         := $(BUILD)/libxlb.a
# The agent's code lives in a library too, so that unit tests link it.
AGENT_SRCS  := $(filter-out agent/main.c,$(wildcard agent/*.c))
AGENT_OBJS  := $(AGENT_SRCS:%.c=$(OBJ)/%.o)
AGENT_LIB   := $(BUILD)/libxlbagent.a

UNIT_SRCS   := $(wildcard tests/unit/*.c) tests/lib/test_pkt.c tests/lib/pkt.c
BPFT_SRCS   := $(wildcard tests/bpf/*.c) tests/lib/pkt.c
TOOLS       := $(BUILD)/tests/xlbt-namesrv $(BUILD)/tests/xlbt-client

BINS := $(BUILD)/xlbctl $(BUILD)/xlb-agent $(BUILD)/tests/unit $(BUILD)/tests/bpf $(TOOLS) \
        $(BUILD)/bench/bench_bpf $(BUILD)/bench/bench_maglev

all: $(BINS)

# ---- vmlinux.h: regenerated from BTF, rewritten only when it changes ----
vmlinux:
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > vmlinux/vmlinux.h.tmp
	$(Q)if cmp -s vmlinux/vmlinux.h.tmp vmlinux/vmlinux.h; then rm vmlinux/vmlinux.h.tmp; \
	    echo "vmlinux.h unchanged"; else mv vmlinux/vmlinux.h.tmp vmlinux/vmlinux.h; \
	    echo "vmlinux.h updated"; fi

# ---- BPF objects and skeletons ----
$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c vmlinux/vmlinux.h
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/%.skel.h: $(BUILD)/bpf/%.bpf.o
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $*_bpf > $@

# ---- userspace ----
$(OBJ)/%.o: %.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(XCFLAGS) $(CFLAGS) -c $< -o $@

# Everything that may include a skeleton waits for all of them.
$(LIB_OBJS) $(AGENT_OBJS) $(OBJ)/agent/main.o $(OBJ)/xlbctl/xlbctl.o \
$(BPFT_SRCS:%.c=$(OBJ)/%.o) $(UNIT_SRCS:%.c=$(OBJ)/%.o) \
$(OBJ)/bench/bench_bpf.o: $(SKELS)

$(LIB): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(AGENT_LIB): $(AGENT_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/xlb-agent: $(OBJ)/agent/main.o $(AGENT_LIB) $(LIB)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/xlbctl: $(OBJ)/xlbctl/xlbctl.o $(OBJ)/xlbctl/xlbctl_api.o $(LIB)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/unit: $(UNIT_SRCS:%.c=$(OBJ)/%.o) $(AGENT_LIB) $(LIB)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -lcriterion -o $@

$(BUILD)/tests/bpf: $(BPFT_SRCS:%.c=$(OBJ)/%.o) $(AGENT_LIB) $(LIB)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -lcriterion -o $@

$(BUILD)/tests/%: $(OBJ)/tests/tools/%.o $(OBJ)/tests/tools/xlbt_tool.o
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $^ -o $@

$(BUILD)/bench/bench_bpf: $(OBJ)/tests/lib/pkt.o

$(BUILD)/bench/%: $(OBJ)/bench/%.o $(LIB)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# ---- the two commands of the README, and friends ----
deps:
	$(Q)scripts/deps.sh

check: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/check.sh $(BUILD)

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo.sh

bench: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/bench.sh $(BUILD)

clean:
	rm -rf $(BUILD)

.PHONY: all vmlinux deps check demo bench clean

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
