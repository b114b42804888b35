# Benchmark and chaos targets; included from the Makefile.
# Both run `pbr-bench` (crates/vpn-pbr-harness) on release binaries, with their
# own control plane, emulator and operator processes; see docs/benchmarks.md.

BENCH_ARGS ?=
CHAOS_ARGS ?=

.PHONY: bench chaos

bench: tools ## Benchmark: N=1000/G=20/T=2s with baseline, 10,000-route scale run, 5000-route restart run (pbr-bench bench --only picks some); rewrites docs/benchmarks.md
	$(CARGO) build --release --locked --bins
	source <(hack/tools.sh --env) && $(TARGET_DIR)/release/pbr-bench bench --out docs/benchmarks.md $(BENCH_ARGS)

chaos: tools ## 1000 routes, 20% faults, operator SIGKILLed every 15 s, one apiserver restart; fails on any violation
	$(CARGO) build --release --locked --bins
	source <(hack/tools.sh --env) && $(TARGET_DIR)/release/pbr-bench chaos $(CHAOS_ARGS)
