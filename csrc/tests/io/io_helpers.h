/*
 * io_helpers.h - what the I/O tests share: a registrar and a fleet set up
 * the same way, and the registrar's events thrown away.
 */
#ifndef GBSIP_TEST_IO_HELPERS_H
#define GBSIP_TEST_IO_HELPERS_H

#include <stdio.h>

#include "../check.h"
#include "device.h"
#include "registrar.h"

#define SERVER_ID "34020000002000000001"
#define DEV "34020000001320000001"

/* A registrar with the shared password 12345678 and a fixed nonce key. */
static gb_registrar *registrar(void)
{
    static const unsigned char key[32] = "0123456789abcdef0123456789abcdef";
    gb_registrar_config c;
    gb_registrar_config_default(&c);
    c.server_id = SERVER_ID;
    c.server_id_len = 20;
    c.shared_password = "12345678";
    c.shared_password_len = 8;
    c.nonce_key = key;
    c.nonce_key_len = sizeof key;
    const char *why;
    gb_registrar *r = gb_registrar_new(&c, &why);
    CHECK(r != NULL);
    return r;
}

/* The registrar's events, thrown away. */
static void drain_events(gb_registrar *r)
{
    gb_reg_event ev[64];
    size_t n;
    while ((n = gb_registrar_pop_events(r, ev, 64)))
        for (size_t i = 0; i < n; i++)
            gb_reg_event_clear(&ev[i]);
}

/* devices 340200000013200000NN to 127.0.0.1:server_port over transport. */
static gb_fleet *fleet(uint16_t server_port, int devices, int transport)
{
    gb_dev_config cfg;
    gb_dev_config_default(&cfg);
    cfg.server_id = (gb_bytes){SERVER_ID, 20};
    cfg.server_host = (gb_bytes){"127.0.0.1", 9};
    cfg.server_port = server_port;
    cfg.password = (gb_bytes){"12345678", 8};
    cfg.seed = 5;
    cfg.transport = transport;
    const char *why;
    gb_fleet *f = gb_fleet_new(&cfg, 4, &why);
    CHECK(f != NULL);
    char id[32];
    for (int i = 0; i < devices; i++) {
        snprintf(id, sizeof id, "340200000013200%05d", i);
        CHECK(gb_fleet_add(f, id, 20) == i);
    }
    return f;
}

#endif
