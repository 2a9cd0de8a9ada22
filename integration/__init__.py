"""End-to-end harness (real Orthanc, RabbitMQ, SNS emulator) and the suites that use it."""
