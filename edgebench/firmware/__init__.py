"""Host-side tools for firmware_bridges/: turning a bundled .tflite model into C the firmware
compiles (model_to_c), and building the device-side ports."""
