# xlb - top-level build.  Everything is built out of tree under $(BUILD).
#   make               build BPF objects, skeletons, libraries and binaries
#   make check         install missing packages, then run every test suite
#   make demo          run the demo topology
#   make bench         data-plane and Maglev benchmarks
#   make vmlinux       regenerate vmlinux/vmlinux.h from the running kernel's BTF
#   make SANITIZE=1    userspace with AddressSanitizer + UndefinedBehaviorSanitizer
#   make V=1           show the commands
#   make install       install under PREFIX (DESTDIR for staging); docs/install.md

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
            -Ibpf -Icommon -Iloader -Iagent -Iproxy -Itests/lib -Itests/tools -I$(BUILD)
LDLIBS   := -lxdp -lbpf -lelf -lz -ljansson -lyaml -luv -lssl -lcrypto -lpcre2-8 \
            -lbrotlienc -lbrotlidec -lzstd -ldeflate -lm -lpthread
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
# The same for the proxy.
PROXY_SRCS  := $(filter-out proxy/main.c,$(wildcard proxy/*.c))
PROXY_OBJS  := $(PROXY_SRCS:%.c=$(OBJ)/%.o)
PROXY_LIB   := $(BUILD)/libxlbproxy.a

UNIT_SRCS   := $(wildcard tests/unit/*.c) tests/lib/test_pkt.c tests/lib/pkt.c
BPFT_SRCS   := $(wildcard tests/bpf/*.c) tests/lib/pkt.c
TOOLS       := $(BUILD)/tests/xlbt-namesrv $(BUILD)/tests/xlbt-client $(BUILD)/tests/xlbt-backend

BINS := $(BUILD)/xlbctl $(BUILD)/xlb-agent $(BUILD)/xlb-proxy $(BUILD)/tests/unit $(BUILD)/tests/bpf $(TOOLS) \
        $(BUILD)/bench/bench_bpf $(BUILD)/bench/bench_maglev

all: $(BINS) $(BUILD)/tests/fuzz_http1

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
$(LIB_OBJS) $(AGENT_OBJS) $(PROXY_OBJS) $(OBJ)/agent/main.o $(OBJ)/proxy/main.o $(OBJ)/xlbctl/xlbctl.o \
$(BPFT_SRCS:%.c=$(OBJ)/%.o) $(UNIT_SRCS:%.c=$(OBJ)/%.o) \
$(OBJ)/bench/bench_bpf.o: $(SKELS)

$(LIB): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(AGENT_LIB): $(AGENT_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(PROXY_LIB): $(PROXY_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/xlb-proxy: $(OBJ)/proxy/main.o $(PROXY_LIB) $(LIB)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/xlb-agent: $(OBJ)/agent/main.o $(AGENT_LIB) $(LIB)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/xlbctl: $(OBJ)/xlbctl/xlbctl.o $(OBJ)/xlbctl/xlbctl_api.o $(LIB)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/unit: $(UNIT_SRCS:%.c=$(OBJ)/%.o) $(PROXY_LIB) $(AGENT_LIB) $(LIB)
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

$(BUILD)/tests/xlbt-backend: LDFLAGS += -pthread

# The HTTP/1 parser's libFuzzer target: clang, with ASan and UBSan.
FUZZ_CFLAGS := -std=gnu11 -g -O1 -Wall -Wextra -Werror -Icommon \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
$(BUILD)/tests/fuzz_http1: tests/fuzz/fuzz_http1.c common/xlb_http1.c common/xlb_http1.h
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) tests/fuzz/fuzz_http1.c common/xlb_http1.c -o $@

fuzz: $(BUILD)/tests/fuzz_http1

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

# ---- install (docs/install.md) ----
# Standard directory variables; DESTDIR prefixes every one of them.
SBINDIR        ?= $(PREFIX)/sbin
LIBDIR         ?= $(PREFIX)/lib
DATAROOTDIR    ?= $(PREFIX)/share
MANDIR         ?= $(DATAROOTDIR)/man
DOCDIR         ?= $(DATAROOTDIR)/doc/xlb
SYSCONFDIR     ?= /etc
# systemd reads /usr/local/lib/systemd/system as well as /usr/lib/systemd/system.
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
INSTALL        ?= install

# What is installed.  A new program adds its binary, its page and its unit
# here.
INSTALL_SBIN  := xlb-agent xlb-proxy xlbctl
INSTALL_BPF   := xlb decap
INSTALL_MAN5  := xlb.yaml.5
INSTALL_MAN8  := xlb-agent.8 xlb-proxy.8 xlbctl.8
# A unit NAME is systemd/NAME.in with the paths below filled in, or systemd/NAME.
INSTALL_UNITS := xlb-agent.service xlb-proxy.service
INSTALL_DOCS  := README.md $(wildcard docs/*.md)

UNIT_SUBST := -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g'

# The example config is xlb.yaml.example; an existing xlb.yaml is never touched.
install: all
	$(call msg,INSTALL,$(DESTDIR)$(PREFIX))
	$(Q)for f in $(INSTALL_SBIN); do \
	    $(INSTALL) -D -m 0755 $(BUILD)/$$f $(DESTDIR)$(SBINDIR)/$$f || exit 1; done
	$(Q)for f in $(INSTALL_BPF); do \
	    $(INSTALL) -D -m 0644 $(BUILD)/bpf/$$f.bpf.o $(DESTDIR)$(LIBDIR)/xlb/$$f.bpf.o || exit 1; done
	$(Q)for f in $(INSTALL_MAN5); do \
	    $(INSTALL) -D -m 0644 man/$$f $(DESTDIR)$(MANDIR)/man5/$$f || exit 1; done
	$(Q)for f in $(INSTALL_MAN8); do \
	    $(INSTALL) -D -m 0644 man/$$f $(DESTDIR)$(MANDIR)/man8/$$f || exit 1; done
	$(Q)mkdir -p $(BUILD)/systemd
	$(Q)for f in $(INSTALL_UNITS); do \
	    if [ -e systemd/$$f.in ]; then \
	        sed $(UNIT_SUBST) systemd/$$f.in > $(BUILD)/systemd/$$f || exit 1; \
	    else cp systemd/$$f $(BUILD)/systemd/$$f || exit 1; fi; \
	    $(INSTALL) -D -m 0644 $(BUILD)/systemd/$$f $(DESTDIR)$(SYSTEMDUNITDIR)/$$f || exit 1; done
	$(Q)for f in $(INSTALL_DOCS); do \
	    $(INSTALL) -D -m 0644 $$f $(DESTDIR)$(DOCDIR)/$$f || exit 1; done
	$(Q)$(INSTALL) -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/xlb
	$(Q)$(INSTALL) -m 0644 etc/xlb.yaml $(DESTDIR)$(SYSCONFDIR)/xlb/xlb.yaml.example

clean:
	rm -rf $(BUILD)

.PHONY: all vmlinux deps check demo bench clean install fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
