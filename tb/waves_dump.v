// Waveform dump for Icarus runs of the tile (Verilog-2005: the generated design needs
// -g2005, which cocotb's own SystemVerilog dump module does not compile under).
// TINYLPU_FST is the output path, given as a define by tinylpu.rtlsim; vvp's -fst selects FST.
module tinylpu_waves;
    initial begin
        $dumpfile(`TINYLPU_FST);
        $dumpvars(0, tinylpu_tile);
    end
endmodule
