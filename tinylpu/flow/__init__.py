"""The tool flows around the RTL: Verilog and simulation under cocotb (:mod:`.rtlsim`), the
board top on Verilator behind a pty (:mod:`.boardsim`), synthesis (:mod:`.synth`), place and
route (:mod:`.pnr`), the board build (:mod:`.fpga`), block-RAM fit (:mod:`.fit`), coverage
(:mod:`.coverage`) and GTKWave save files (:mod:`.gtkw`)."""
