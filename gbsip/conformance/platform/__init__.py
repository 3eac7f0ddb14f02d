"""GB/T 28181 platform conformance: gbsip plays the camera.

    pytest --pyargs gbsip.conformance.platform --gb-platform udp://HOST:PORT \
        --gb-server-id 34020000002000000001 --gb-device-id 34020000001320000001 \
        --gb-password 12345678

Every check is listed with its clause in docs/conformance.md.
"""
