"""GB/T 28181 cameras on Locust: each Locust user is a block of simulated
devices in gbsip's C engine (see docs/distributed.md).

One process, web UI on http://127.0.0.1:8089:

    locust -f examples/locustfile.py --gb-server udp://127.0.0.1:5060

Headless, a master and two workers on this machine:

    locust -f examples/locustfile.py --master --headless --expect-workers 2 \\
        -u 20 -r 2 -t 5m --gb-server udp://192.0.2.10:5060 --gb-devices-per-user 1000
    locust -f examples/locustfile.py --worker &
    locust -f examples/locustfile.py --worker &
"""
from gbsip.locust import GBDeviceUser


class Cameras(GBDeviceUser):
    """--gb-devices-per-user cameras that register with Digest, refresh,
    send keepalives and unregister when the user stops; every --gb-* option
    applies (``locust -f examples/locustfile.py --help``)."""
