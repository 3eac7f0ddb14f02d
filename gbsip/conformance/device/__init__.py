"""GB/T 28181 device (camera) conformance: gbsip plays the platform.

    pytest --pyargs gbsip.conformance.device --gb-listen udp://0.0.0.0:5060 \
        --gb-server-id 34020000002000000001 --gb-device-id 34020000001320000001 \
        --gb-password 12345678 --gb-keepalive-interval 60

then point the camera at this machine (or give --gb-device-cmd to start it).
The checks run in order on one session of the camera; see docs/conformance.md.
"""
