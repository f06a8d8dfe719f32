# SPDX-License-Identifier: GPL-2.0
#
# icmp_ct entry points. `make help` lists them. Kbuild (beside this file) describes the
# module itself; this Makefile only drives the kernel's build system and the scripts.

# The module is built with LLVM, like the test kernel: bindgen then reads the module's C
# flags unchanged. A tree built with GCC needs its own bindgen flags (BUILD-FACTS.md).
LLVM ?= 1
export LLVM

# make install and uninstall are for the running kernel unless KDIR says otherwise; every
# other target builds against the test kernel by default.
INSTALL_GOALS := install uninstall
ifeq ($(origin KDIR),undefined)
ifneq ($(filter $(INSTALL_GOALS),$(MAKECMDGOALS)),)
KDIR := /lib/modules/$(shell uname -r)/build
else
KDIR := $(shell scripts/kernel.sh path normal)
KERNEL_DEP := kernel
endif
endif

# RUSTC and BINDGEN from the environment (e.g. under dkms) must reach kbuild, whose own
# assignments only a command line overrides.
MODULE_MAKE = $(MAKE) -C $(KDIR) M=$(CURDIR) LLVM=$(LLVM) $(if $(RUSTC),RUSTC=$(RUSTC)) \
	$(if $(BINDGEN),BINDGEN=$(BINDGEN))

.PHONY: all module kernel kernel-debug kdir deps check check-debug check-quick demo bench fuzz \
	hostile stress profile clean help

all: module

# A tree that cannot take the module is refused with one line saying why, before kbuild runs.
module: $(KERNEL_DEP)
	@RUSTC="$(RUSTC)" BINDGEN="$(BINDGEN)" scripts/check-kdir.sh "$(KDIR)"
	$(MODULE_MAKE) modules

# kbuild installs into /lib/modules/<release>/extra (or under INSTALL_MOD_PATH); depmod then
# makes `modprobe icmp_ct` find it. kbuild runs depmod only for a tree with a System.map,
# which distributions' header packages do not have: run it here in every case, and make
# kbuild's own a no-op (DEPMOD=true) so that it runs once.
.PHONY: install uninstall
READ_RELEASE = release=$$(cat "$(KDIR)/include/config/kernel.release")
RUN_DEPMOD = depmod $(if $(INSTALL_MOD_PATH),-b "$(INSTALL_MOD_PATH)") "$$release"

install: module
	$(MODULE_MAKE) INSTALL_MOD_DIR=extra DEPMOD=true modules_install
	@$(READ_RELEASE) && $(RUN_DEPMOD)

uninstall:
	@$(READ_RELEASE) && \
	rm -fv "$(INSTALL_MOD_PATH)/lib/modules/$$release/extra/icmp_ct.ko"* && \
	$(RUN_DEPMOD)

kernel: deps
	@scripts/kernel.sh build normal >/dev/null

kernel-debug: deps
	@scripts/kernel.sh build debug >/dev/null

kdir:
	@echo $(KDIR)

deps:
	@scripts/install-deps.sh

check: deps
	@scripts/check.sh

# make check with the whole suite on the debug kernel, not only its share of it.
check-debug: deps
	@ICMP_CT_DEBUG_SUITE=all scripts/check.sh

# make check without the debug kernel's run: quicker, for local iteration (never what CI runs).
check-quick: deps
	@ICMP_CT_DEBUG_KERNEL=0 scripts/check.sh

demo: kernel
	@scripts/demo.sh

# Settings: BENCH_ROUNDS, BENCH_PACKETS, BENCH_FILLS, ... (bench/run.sh, bench/guest.sh).
bench: deps module
	@bench/run.sh

# Settings: PROFILE_WORKLOAD, PROFILE_MODES, PROFILE_PACKETS, PROFILE_TOP (bench/profile.sh).
profile: deps $(KERNEL_DEP)
	@bench/profile.sh

# The long versions of two selftests on the debug kernel (make check runs short ones).
# Settings: HOSTILE_FRAMES (1000000), HOSTILE_SEED; STRESS_SECONDS (600), STRESS_RELOAD.
HOSTILE_FRAMES ?= 1000000
STRESS_SECONDS ?= 600
hostile: deps
	@scripts/debug-test.sh icmp_ct_hostile_frames.sh HOSTILE_FRAMES=$(HOSTILE_FRAMES) \
		HOSTILE_BOTH_WAYS=1 $(if $(HOSTILE_SEED),HOSTILE_SEED=$(HOSTILE_SEED))

stress: deps
	@scripts/debug-test.sh icmp_ct_stress.sh STRESS_SECONDS=$(STRESS_SECONDS) \
		$(if $(STRESS_RELOAD),STRESS_RELOAD=$(STRESS_RELOAD))

# Settings: FUZZ_SECONDS (per target, default 60), FUZZ_RUNS, FUZZ_TARGETS (rust/proto/fuzz/run.sh).
fuzz:
	@rust/proto/fuzz/run.sh

clean:
	@if [ -d "$(KDIR)" ]; then $(MODULE_MAKE) clean; fi
	rm -f rust/bindings_generated.rs
	rm -rf rust/proto/target results

help:
	@echo "make            build icmp_ct.ko (against KDIR, default: the test kernel, built once)"
	@echo "make kernel     build the cached test kernel; make kernel-debug: the debug one"
	@echo "make install    build and install icmp_ct.ko into /lib/modules/<release>/extra"
	@echo "                of the running kernel (or KDIR's), then depmod: modprobe icmp_ct"
	@echo "make uninstall  remove it again"
	@echo "make kdir       print the test kernel's tree"
	@echo "make demo       boot the test kernel, load the module, ping across two namespaces"
	@echo "make check      every test: static checks, host tests, the selftests in VMs on"
	@echo "                the test kernel, the concurrency and teardown ones (and the"
	@echo "                debug-only ones) also on its debug build (KASAN, lockdep, kmemleak)"
	@echo "make check-debug  the same with the whole suite on the debug build"
	@echo "make check-quick  the same without the debug build"
	@echo "make bench      benchmark against nf_conntrack and no tracking in one guest:"
	@echo "                table, bench/results/latest.{md,json,png} (about 5 minutes)"
	@echo "make profile    guest instructions per packet by function and, in icmp_ct, by"
	@echo "                source line, for no tracking, nf_conntrack and icmp_ct"
	@echo "                (PROFILE_WORKLOAD, default echo1; bench/results/profile-*.txt)"
	@echo "make fuzz       fuzz each parser, the error classification and the decision in"
	@echo "                turn (FUZZ_SECONDS each, default 60), minimize and grow the"
	@echo "                corpus in rust/proto/fuzz/corpus (make check replays it)"
	@echo "make hostile    1,000,000 random and malformed frames at both ends of a veth pair"
	@echo "                on the debug kernel (HOSTILE_FRAMES; icmp_ct_hostile_frames.sh)"
	@echo "make stress     10 minutes of floods, namespace churn, sysctl writers, readers and"
	@echo "                rmmod/insmod on the debug kernel (STRESS_SECONDS; icmp_ct_stress.sh)"
	@echo "make clean      remove build products"
