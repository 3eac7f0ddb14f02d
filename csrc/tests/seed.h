/*
 * seed.h - the seed's first REGISTER (shared/seed, GB/T 28181 §9.1.2.1)
 * and the §9.6.1 keepalive body, CRLF line ends as on the wire, for every
 * C test (and benchmark) that starts from them.
 */
#ifndef GBSIP_TEST_SEED_H
#define GBSIP_TEST_SEED_H

static const char SEED_REGISTER1[] =
    "REGISTER sip:192.168.10.177:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.168.10.117:5061;rport=5061;branch=z9hG4bK2509000523;received=192.168.10.117\r\n"
    "From: <sip:34020000001320000001@192.168.10.177>;tag=2577708869\r\n"
    "To: <sip:34020000001320000001@192.168.10.177>\r\n"
    "Call-ID: 939764460\r\n"
    "CSeq: 1 REGISTER\r\n"
    "Contact: <sip:34020000001320000001@192.168.10.117:5061;line=6513f93347c330b>\r\n"
    "Max-Forwards: 70\r\n"
    "User-Agent: eXosip/3.6.0\r\n"
    "Expires: 3600\r\n"
    "Authorization: Capability, algorithm=\"H:MD5\"\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

/* The keepalive body of GB/T 28181 §9.6.1 (Annex A.2.5), as devices send it. */
static const char SEED_KEEPALIVE_BODY[] =
    "<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n"
    "<Notify>\r\n"
    "<CmdType>Keepalive</CmdType>\r\n"
    "<SN>43</SN>\r\n"
    "<DeviceID>34020000001320000001</DeviceID>\r\n"
    "<Status>OK</Status>\r\n"
    "</Notify>\r\n";

#endif
