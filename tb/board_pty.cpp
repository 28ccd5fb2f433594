// The board top (rtl/board.py, module tinylpu_board, PLL bypassed) on Verilator, its UART
// pins wired to a pseudo-terminal: the host code that drives a real board through a USB
// serial port (tinylpu/link.py over pyserial) opens the pty instead, byte for byte the same.
//
//   board_pty DIVISOR [MAX_CYCLES]
//
// Prints "PTY <path>" on stdout once the pty exists, then simulates until the host has opened
// the pty and closed it again, SIGTERM/SIGINT, or MAX_CYCLES (0: no limit); prints
// "CYCLES <n>" and exits 0 (3 when MAX_CYCLES ran out).
//
// The UART model here is the line, not the design under test: each byte from the pty is sent
// to the rx pin as 8N1 at DIVISOR clock cycles per bit, back to back; the tx pin is sampled in
// the middle of each bit and every byte with a good stop bit goes to the pty (a bad stop bit
// is counted and dropped, as a UART would).

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include "Vtinylpu_board.h"
#include "verilated.h"

static volatile std::sig_atomic_t g_stop = 0;
static void on_signal(int) { g_stop = 1; }

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s DIVISOR [MAX_CYCLES]\n", argv[0]);
        return 2;
    }
    const long divisor = std::strtol(argv[1], nullptr, 10);
    const uint64_t max_cycles = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 0;
    if (divisor < 4) {
        std::fprintf(stderr, "board_pty: DIVISOR must be at least 4, not %s\n", argv[1]);
        return 2;
    }

    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) || unlockpt(master)) {
        std::perror("board_pty: posix_openpt");
        return 2;
    }
    struct termios tio;
    if (tcgetattr(master, &tio) == 0) {  // raw bytes both ways: no echo, no line editing
        cfmakeraw(&tio);
        tcsetattr(master, TCSANOW, &tio);
    }
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGINT, on_signal);
    std::printf("PTY %s\n", ptsname(master));
    std::fflush(stdout);

    VerilatedContext ctx;
    Vtinylpu_board top{&ctx};
    top.clk = 0;
    top.rst = 1;
    top.rx = 1;
    top.clk_in = 0;
    top.button = 0;
    auto tick = [&top]() {
        top.clk = 1;
        top.eval();
        top.clk = 0;
        top.eval();
    };
    for (int i = 0; i < 4; ++i) tick();
    top.rst = 0;

    // host -> rx pin
    uint32_t tx_frame = 0;      // remaining bits, LSB first (start, 8 data, stop)
    int tx_bits = 0;            // bits left in tx_frame
    long tx_count = 0;          // cycles left in the current bit
    uint64_t next_poll = 0;     // cycle of the next read() of the pty
    bool opened = false;        // the host has had the pty open
    // tx pin -> host
    int rx_state = -1;          // -1 idle, 0 start bit, 1..8 data bits, 9 stop bit
    long rx_count = 0;          // cycles to the next sample
    unsigned rx_byte = 0;
    uint64_t framing_errors = 0, bytes_in = 0, bytes_out = 0;

    uint64_t cycle = 0;
    int code = 0;
    while (!g_stop) {
        if (max_cycles && cycle >= max_cycles) {
            code = 3;
            break;
        }
        // the next byte from the host, when the line is idle (polled every 64 cycles)
        if (tx_bits == 0 && cycle >= next_poll) {
            unsigned char byte;
            ssize_t got = read(master, &byte, 1);
            if (got == 1) {
                opened = true;
                ++bytes_in;
                tx_frame = (1u << 9) | (uint32_t(byte) << 1);   // stop 1, data, start 0
                tx_bits = 10;
                tx_count = divisor;
            } else if (got < 0 && errno == EIO) {   // no process has the pty open
                if (opened) break;                   // the host closed it: done
                next_poll = cycle + 4096;
            } else {
                if (got < 0 && errno == EAGAIN) opened = true;
                next_poll = cycle + 64;
            }
        }
        top.rx = tx_bits ? (tx_frame & 1) : 1;

        tick();
        ++cycle;

        if (tx_bits && --tx_count == 0) {
            tx_frame >>= 1;
            tx_count = divisor;
            if (--tx_bits == 0) next_poll = cycle;    // back to back
        }

        // sample the tx pin (its value after this cycle's edge)
        if (rx_state < 0) {
            if (!top.tx) {
                rx_state = 0;
                rx_count = divisor / 2;
            }
        } else if (--rx_count == 0) {
            const int bit = top.tx;
            if (rx_state == 0) {
                if (bit) rx_state = -1;              // a glitch, not a start bit
                else {
                    rx_state = 1;
                    rx_byte = 0;
                    rx_count = divisor;
                }
            } else if (rx_state <= 8) {
                rx_byte |= unsigned(bit) << (rx_state - 1);
                ++rx_state;
                rx_count = divisor;
            } else {
                if (bit) {
                    unsigned char byte = rx_byte;
                    while (write(master, &byte, 1) < 0 && errno == EAGAIN && !g_stop)
                        usleep(100);
                    ++bytes_out;
                } else {
                    ++framing_errors;
                }
                rx_state = -1;
            }
        }
    }
    top.final();
    std::printf("CYCLES %llu\nBYTES_IN %llu\nBYTES_OUT %llu\nFRAMING_ERRORS %llu\n",
                (unsigned long long)cycle, (unsigned long long)bytes_in,
                (unsigned long long)bytes_out, (unsigned long long)framing_errors);
    std::fflush(stdout);
    close(master);
    return code;
}
