"""cocotb testbenches for the accelerator RTL (run through `bebert.hw.verify`)."""
