/*
 * camera.c - vendor profiles, generated channels and the MANSCDP answers of
 * a simulated camera (see camera.h).
 */
#include "camera.h"

#include <stdio.h>
#include <string.h>

/* ---- presets ------------------------------------------------------------------ */

/* Facts only, each from the public document named in .source.  A value the
 * sources do not give is left out (an empty text leaves the field out of
 * the answers, or falls back as camera.h says), never made up; "generic"
 * and "generic-nvr" are gbsip's own cameras and claim no vendor. */
static const gb_cam_preset presets[] = {
    {
        .name = "generic",
        .text = {
            [GB_CAM_F_DEVICE_NAME] = "gbsip camera",
            [GB_CAM_F_MANUFACTURER] = "gbsip",
            [GB_CAM_F_MODEL] = "gbsip-ipc",
            [GB_CAM_F_FIRMWARE] = "gbsip",
            [GB_CAM_F_DEVICE_TYPE] = "IPC",
            [GB_CAM_F_OWNER] = "gbsip",
            [GB_CAM_F_ADDRESS] = "gbsip",
            [GB_CAM_F_CHANNEL_NAME] = "Camera {nn}",
            [GB_CAM_F_PRESET_NAME] = "Preset {n}",
        },
        .channels = 1, .channel_type = 131, .max_alarm = 1, .presets = 4,
        .civil_code_digits = 6, .ptz_type = 1, .max_camera = 1, .max_alarm_field = 1,
        .quirks = GB_CAM_Q_POSITION,
        .source = "gbsip's own single-channel PTZ IP camera",
    },
    {
        .name = "generic-nvr",
        .text = {
            [GB_CAM_F_DEVICE_NAME] = "gbsip recorder",
            [GB_CAM_F_MANUFACTURER] = "gbsip",
            [GB_CAM_F_MODEL] = "gbsip-nvr",
            [GB_CAM_F_FIRMWARE] = "gbsip",
            [GB_CAM_F_DEVICE_TYPE] = "NVR",
            [GB_CAM_F_OWNER] = "gbsip",
            [GB_CAM_F_ADDRESS] = "gbsip",
            [GB_CAM_F_CHANNEL_NAME] = "Camera {nn}",
            [GB_CAM_F_PRESET_NAME] = "Preset {n}",
        },
        .channels = 64, .channel_type = 131, .max_alarm = 4, .presets = 0,
        .civil_code_digits = 6, .ptz_type = 3, .max_camera = 64, .max_alarm_field = 1,
        .quirks = GB_CAM_Q_POSITION,
        .source = "gbsip's own 64-channel network video recorder",
    },
    {
        .name = "hikvision-ipc",
        .text = {
            [GB_CAM_F_MANUFACTURER] = "Hikvision",
            [GB_CAM_F_MODEL] = "DS-2CD2T20-I3",
            [GB_CAM_F_FIRMWARE] = "V5.4.5 build 170302",
            [GB_CAM_F_CHANNEL_NAME] = "Camera {nn}",
            [GB_CAM_F_PRESET_NAME] = "Preset {n}",
        },
        .channels = 1, .channel_type = 131, .max_alarm = 0, .presets = 0,
        .civil_code_digits = 6, .ptz_type = 3, .max_camera = 0, .max_alarm_field = 0,
        .quirks = 0,
        .source =
            "Manufacturer \"Hikvision\" and the channel name \"Camera 01\" (channel "
            "34020000001310000001): the Hikvision IPC in Tencent Cloud IoT Video "
            "Industry's DescribeDevices example (cloud.tencent.com/document/product/1344); "
            "model DS-2CD2T20-I3, a Hikvision bullet camera (m.zixin.com.cn/doc/9471645.html), "
            "hence PTZType 3 (fixed); firmware string form \"V5.4.5 build 170302\" reported "
            "by a Hikvision device (365seal.com/y/xPnQMrWlnK.html)",
    },
    {
        .name = "hikvision-nvr",
        .text = {
            [GB_CAM_F_DEVICE_NAME] = "Network Video Recorder",
            [GB_CAM_F_MANUFACTURER] = "HIKVISION",
            [GB_CAM_F_MODEL] = "DS-7916N-R4",
            [GB_CAM_F_FIRMWARE] = "V4.72.107",
            [GB_CAM_F_DEVICE_TYPE] = "DVR",
            [GB_CAM_F_CHANNEL_NAME] = "Camera {nn}",
            [GB_CAM_F_PRESET_NAME] = "Preset {n}",
        },
        .channels = 16, .channel_type = 131, .max_alarm = 16, .presets = 0,
        .civil_code_digits = 6, .ptz_type = 0, .max_camera = 16, .max_alarm_field = 1,
        .quirks = 0,
        .source =
            "DeviceInfo of a Hikvision NVR quoted in github.com/go-av/gosip "
            "pkg/gb28181/query__device_info.go: DeviceName \"Network Video Recorder\", "
            "DeviceType DVR, Manufacturer HIKVISION, Model DS-7916N-R4, Firmware V4.72.107, "
            "MaxCamera 16, MaxAlarm 16; channel names as the Hikvision entry of Tencent "
            "Cloud's DescribeDevices example (\"Camera 01\")",
    },
    {
        .name = "dahua-ipc",
        .text = {
            [GB_CAM_F_MANUFACTURER] = "Dahua",
            [GB_CAM_F_MODEL] = "DH-SD-6C3230UE-HN",
            [GB_CAM_F_FIRMWARE] = "2.623.0000000.17.R,2019-01-19",
            [GB_CAM_F_DEVICE_TYPE] = "SD",
            [GB_CAM_F_OWNER] = "0",
            [GB_CAM_F_ADDRESS] = "axy",
            [GB_CAM_F_CHANNEL_NAME] = "IPC",
            [GB_CAM_F_PRESET_NAME] = "Preset {n}",
            [GB_CAM_F_USER_AGENT] = "SIP UAS V3.0.0.675168",
        },
        .channels = 1, .channel_type = 131, .max_alarm = 2, .presets = 0,
        .civil_code_digits = 6, .ptz_type = 3, .max_camera = 1, .max_alarm_field = 1,
        .quirks = GB_CAM_Q_NO_SAFETY_WAY | GB_CAM_Q_CSEQ_20,
        .source =
            "a Dahua speed dome's capture in blog.ctftools.com/2024/05/newpost-56 "
            "(\"GB28181抓包记录\"): User-Agent \"SIP UAS V3.0.0.675168\", every MESSAGE "
            "with CSeq 20; DeviceInfo with DeviceName = Model DH-SD-6C3230UE-HN, DeviceType "
            "SD, Firmware 2.623.0000000.17.R,2019-01-19, MaxCamera 1, MaxAlarm 2, Channel 1; "
            "Catalog items with Owner 0, a 6-digit CivilCode, Address axy, no SafetyWay, "
            "PTZType 3; DeviceStatus listing 2 alarm inputs (type 134) ONDUTY; the channel "
            "name \"IPC\" is the Dahua channel of Tencent Cloud's DescribeDevices example",
    },
    {
        .name = "dahua-nvr",
        .text = {
            [GB_CAM_F_MANUFACTURER] = "Dahua",
            [GB_CAM_F_MODEL] = "DH-NVR504-I",
            [GB_CAM_F_FIRMWARE] = "2.623.0000000.17.R,2019-01-19",
            [GB_CAM_F_OWNER] = "0",
            [GB_CAM_F_ADDRESS] = "axy",
            [GB_CAM_F_CHANNEL_NAME] = "IPC",
            [GB_CAM_F_PRESET_NAME] = "Preset {n}",
            [GB_CAM_F_USER_AGENT] = "SIP UAS V3.0.0.675168",
        },
        .channels = 4, .channel_type = 131, .max_alarm = 0, .presets = 0,
        .civil_code_digits = 6, .ptz_type = 3, .max_camera = 0, .max_alarm_field = 0,
        .quirks = GB_CAM_Q_NO_SAFETY_WAY | GB_CAM_Q_CSEQ_20 | GB_CAM_Q_MODEL_PER_DEVICE |
                  GB_CAM_Q_POSITION_ZERO,
        .source =
            "the Catalog items of a Dahua NVR kept in a GB28181 gateway's public database "
            "dump (found by content search for \"DH-NVR504-I\"; the index does not name "
            "the repository): every channel reports Model DH-NVR504-I, Owner 0, Address "
            "axy, a 6-digit CivilCode, no SafetyWay, Longitude/Latitude 0.0, PTZType 1 or "
            "3; the SIP-level facts (User-Agent, CSeq 20, firmware form) are the Dahua "
            "capture of dahua-ipc's source; 4 channels is our choice",
    },
};

size_t gb_cam_preset_count(void)
{
    return sizeof presets / sizeof presets[0];
}

const gb_cam_preset *gb_cam_preset_at(size_t i)
{
    return i < gb_cam_preset_count() ? &presets[i] : NULL;
}

const gb_cam_preset *gb_cam_preset_find(const char *name, size_t n)
{
    for (size_t i = 0; i < gb_cam_preset_count(); i++)
        if (strlen(presets[i].name) == n && memcmp(presets[i].name, name, n) == 0)
            return &presets[i];
    return NULL;
}

void gb_cam_profile_from_preset(gb_cam_profile *p, const gb_cam_preset *pr)
{
    memset(p, 0, sizeof *p);
    for (int k = 0; k < GB_CAM_F__COUNT; k++) {
        const char *t = pr->text[k] ? pr->text[k] : "";
        p->utf8[k] = (gb_bytes){t, strlen(t)};
        p->gb18030[k] = p->utf8[k]; /* ASCII: the same bytes */
    }
    p->channels = pr->channels;
    p->channel_type = pr->channel_type;
    p->max_alarm = pr->max_alarm;
    p->presets = pr->presets;
    p->civil_code_digits = pr->civil_code_digits;
    p->ptz_type = pr->ptz_type;
    p->max_camera = pr->max_camera;
    p->max_alarm_field = pr->max_alarm_field;
    p->quirks = pr->quirks;
}

const char *gb_cam_profile_check(const gb_cam_profile *p)
{
    for (int k = 0; k < GB_CAM_F__COUNT; k++)
        for (int cs = 0; cs < 2; cs++) {
            gb_bytes b = cs ? p->gb18030[k] : p->utf8[k];
            if (b.n > GB_CAM_TEXT_MAX)
                return "a profile text is longer than 128 bytes";
            for (size_t i = 0; i < b.n; i++) {
                unsigned c = (unsigned char)b.p[i];
                if (c < 0x20 && c != '\t')
                    return "a profile text holds a control character";
            }
        }
    if (p->channels > GB_CAM_MAX_CHANNELS)
        return "more than 1024 channels";
    if (p->channel_type < 100 || p->channel_type > 999)
        return "the channel type code must have three digits (131, 132...)";
    if (p->max_alarm > GB_CAM_MAX_ALARM_IN)
        return "more than 16 alarm inputs";
    if (p->presets > GB_CAM_MAX_PRESETS)
        return "more than 64 presets";
    if (p->civil_code_digits > 10 || p->civil_code_digits % 2)
        return "civil_code_digits must be 0, 2, 4, 6, 8 or 10";
    if (p->ptz_type > 4)
        return "PTZType is 0 (none) or 1..4";
    if (p->quirks & ~(uint32_t)GB_CAM_Q_ALL)
        return "unknown quirk";
    return gb_cam_chan_fields_check(&p->chan);
}

/* ---- small helpers ---------------------------------------------------------- */

static gb_manscdp_str S(gb_bytes b)
{
    return (gb_manscdp_str){b.p, b.n};
}

/* A profile text in the charset asked for; .p NULL when empty (left out). */
static gb_manscdp_str text(const gb_cam_device *d, gb_cam_field f, int gb)
{
    gb_bytes b = gb && d->prof->gb18030[f].p ? d->prof->gb18030[f] : d->prof->utf8[f];
    return b.n ? S(b) : (gb_manscdp_str){NULL, 0};
}

int gb_cam_charset_gb(gb_manscdp_charset cs)
{
    return cs != GB_MANSCDP_CHARSET_UTF8;
}

static int all_digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return n > 0;
}

static void put_digits(char *out, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* ID with the device's first 10 digits (or the default domain when the
 * device ID is not 20 digits), type code, 7-digit serial. */
static void make_id(const gb_cam_device *d, unsigned type, uint32_t serial,
                    char out[GB_CAM_ID_LEN])
{
    if (d->id_len == GB_CAM_ID_LEN && all_digits(d->id, 10))
        memcpy(out, d->id, 10);
    else
        memcpy(out, "3402000000", 10);
    put_digits(out + 10, type, 3);
    put_digits(out + 13, serial % 10000000u, 7);
}

/* The device ID's last 7 digits (1 when they are not all digits). */
static uint32_t own_serial(const gb_cam_device *d)
{
    size_t from = d->id_len > 7 ? d->id_len - 7 : 0;
    uint32_t v = 0;
    for (size_t k = from; k < d->id_len; k++) {
        if (d->id[k] < '0' || d->id[k] > '9')
            return 1;
        v = v * 10 + (uint32_t)(d->id[k] - '0');
    }
    return v;
}

/* With GB_CAM_BASE_FROM_ID, the serials of a list of n > 1 keep the
 * index in their top digits and the device's own serial below: 10^6 for
 * up to 10 entries, 10^5 up to 100, 10^4 up to 1000, 10^3 beyond. */
static uint32_t index_scale(uint32_t n)
{
    uint32_t scale = 1000000u;
    for (uint32_t top = 10; top < n && scale > 1000u; top *= 10)
        scale /= 10;
    return scale;
}

/* The serial of entry k of a list of n (channels, alarm inputs). */
static uint32_t serial_of(const gb_cam_device *d, uint32_t k, uint32_t n)
{
    if (d->chan_base != GB_CAM_BASE_FROM_ID)
        return (d->chan_base % 10000000u + k) % 10000000u;
    uint32_t own = own_serial(d);
    if (n <= 1)
        return own;
    uint32_t scale = index_scale(n);
    return (k * scale + own % scale) % 10000000u;
}

/* The entry of a list of n whose serial is serial, or -1. */
static long index_of(const gb_cam_device *d, uint32_t serial, uint32_t n)
{
    uint32_t k;
    if (d->chan_base != GB_CAM_BASE_FROM_ID) {
        k = (serial + 10000000u - d->chan_base % 10000000u) % 10000000u;
    } else if (n <= 1) {
        k = serial == own_serial(d) ? 0 : n;
    } else {
        uint32_t scale = index_scale(n);
        k = serial % scale == own_serial(d) % scale ? serial / scale : n;
    }
    return k < n ? (long)k : -1;
}

void gb_cam_channel_id(const gb_cam_device *d, uint32_t ch, char out[GB_CAM_ID_LEN])
{
    make_id(d, d->prof->channel_type, serial_of(d, ch, d->nchan), out);
}

void gb_cam_alarm_id(const gb_cam_device *d, uint32_t k, char out[GB_CAM_ID_LEN])
{
    make_id(d, 134, serial_of(d, k, d->prof->max_alarm), out);
}

long gb_cam_target(const gb_cam_device *d, const char *id, size_t n)
{
    if (n == d->id_len && memcmp(id, d->id, n) == 0)
        return GB_CAM_TARGET_DEVICE;
    if (n != GB_CAM_ID_LEN || !all_digits(id, n))
        return GB_CAM_TARGET_NONE;
    char mine[GB_CAM_ID_LEN];
    make_id(d, 0, 0, mine);
    if (memcmp(id, mine, 10) != 0)
        return GB_CAM_TARGET_NONE;
    unsigned type = (unsigned)((id[10] - '0') * 100 + (id[11] - '0') * 10 + (id[12] - '0'));
    uint32_t serial = 0;
    for (int i = 13; i < 20; i++)
        serial = serial * 10 + (uint32_t)(id[i] - '0');
    long k;
    if (type == d->prof->channel_type && (k = index_of(d, serial, d->nchan)) >= 0)
        return k;
    if (type == 134 && (k = index_of(d, serial, d->prof->max_alarm)) >= 0)
        return GB_CAM_TARGET_ALARM - k;
    return GB_CAM_TARGET_NONE;
}

/* Expand a {n}/{nn}/{nnn} template with number num into out. */
static size_t expand(gb_bytes tpl, uint32_t num, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < tpl.n && o < cap;) {
        if (tpl.p[i] == '{') {
            size_t j = i + 1;
            while (j < tpl.n && tpl.p[j] == 'n')
                j++;
            if (j < tpl.n && tpl.p[j] == '}' && j - i - 1 >= 1 && j - i - 1 <= 3) {
                char tmp[16];
                int width = (int)(j - i - 1), len = 0;
                uint32_t v = num;
                do {
                    tmp[len++] = (char)('0' + v % 10);
                    v /= 10;
                } while (v);
                while (len < width)
                    tmp[len++] = '0';
                while (len && o < cap)
                    out[o++] = tmp[--len];
                i = j + 1;
                continue;
            }
        }
        out[o++] = tpl.p[i++];
    }
    return o;
}

size_t gb_cam_channel_name(const gb_cam_device *d, uint32_t ch, int gb, char *out, size_t cap)
{
    gb_bytes custom;
    if (d->name_fn && ch < d->nchan && (d->chan[ch] & GB_CAM_CH_CUSTOM_NAME) &&
        d->name_fn(d->name_arg, ch, gb, &custom)) {
        size_t n = custom.n < cap ? custom.n : cap;
        memcpy(out, custom.p, n);
        return n;
    }
    gb_bytes tpl = gb && d->prof->gb18030[GB_CAM_F_CHANNEL_NAME].p
                       ? d->prof->gb18030[GB_CAM_F_CHANNEL_NAME]
                       : d->prof->utf8[GB_CAM_F_CHANNEL_NAME];
    if (!tpl.n)
        tpl = (gb_bytes){"Camera {nn}", 11};
    return expand(tpl, ch + 1, out, cap);
}

const char *gb_cam_chan_fields_check(const gb_cam_chan_fields *o)
{
    if (o->set & ~GB_CAM_O_ALL)
        return "unknown field bits";
    if ((o->set & GB_CAM_O_PARENTAL) && o->parental > 1)
        return "Parental must be 0 or 1";
    if ((o->set & GB_CAM_O_PTZ_TYPE) && o->ptz_type > 4)
        return "PTZType must be 0..4";
    if ((o->set & GB_CAM_O_CIVIL_CODE) &&
        (!o->civil_len || o->civil_len > GB_CAM_ID_LEN || !all_digits(o->civil_code, o->civil_len)))
        return "CivilCode must be 1 to 20 digits";
    if (o->set & GB_CAM_O_PARENT_ID) {
        if (!o->parent_len || o->parent_len > GB_CAM_PARENT_MAX)
            return "ParentID must be 1 to 64 bytes";
        for (size_t k = 0; k < o->parent_len; k++) {
            char c = o->parent_id[k];
            if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                  c == '/'))
                return "ParentID must be letters, digits and '/'";
        }
    }
    /* written with %.6f into 24 bytes: keep to real places (and no NaN) */
    if ((o->set & GB_CAM_O_POSITION) &&
        !(o->lon >= -180.0 && o->lon <= 180.0 && o->lat >= -90.0 && o->lat <= 90.0))
        return "Longitude must be -180..180 and Latitude -90..90";
    return "";
}

/* ---- time --------------------------------------------------------------------- */

int64_t gb_cam_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

void gb_cam_format_time(int64_t local_ms, char out[19])
{
    int64_t s = floor_div(local_ms, 1000);
    int64_t days = floor_div(s, 86400), sod = s - days * 86400;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999)
        y = 0;
    put_digits(out, (uint64_t)y, 4);
    out[4] = '-';
    put_digits(out + 5, m, 2);
    out[7] = '-';
    put_digits(out + 8, d, 2);
    out[10] = 'T';
    put_digits(out + 11, (uint64_t)(sod / 3600), 2);
    out[13] = ':';
    put_digits(out + 14, (uint64_t)(sod / 60 % 60), 2);
    out[16] = ':';
    put_digits(out + 17, (uint64_t)(sod % 60), 2);
}

static int num_at(const char *p, size_t w, unsigned *v)
{
    *v = 0;
    for (size_t i = 0; i < w; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        *v = *v * 10 + (unsigned)(p[i] - '0');
    }
    return 0;
}

int64_t gb_cam_parse_time(const char *p, size_t n)
{
    unsigned y, mo, d, h, mi, s, ms = 0;
    if (n < 19 || p[4] != '-' || p[7] != '-' || (p[10] != 'T' && p[10] != ' ') ||
        p[13] != ':' || p[16] != ':' || num_at(p, 4, &y) || num_at(p + 5, 2, &mo) ||
        num_at(p + 8, 2, &d) || num_at(p + 11, 2, &h) || num_at(p + 14, 2, &mi) ||
        num_at(p + 17, 2, &s))
        return INT64_MIN;
    if (n > 19) {
        if (p[19] != '.' || n < 21 || n > 23 || num_at(p + 20, n - 20, &ms))
            return INT64_MIN;
        for (size_t k = n - 20; k < 3; k++)
            ms *= 10;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
        return INT64_MIN;
    int64_t days = gb_cam_days_from_civil(y, mo, d);
    return ((days * 24 + h) * 60 + mi) * 60000 + (int64_t)s * 1000 + ms;
}

/* ---- places --------------------------------------------------------------------- */

void gb_cam_position(const gb_cam_device *d, uint32_t ch, int64_t t_ms, double *lon,
                     double *lat, double *speed, double *direction)
{
    /* a patrol round a square of 0.002 degrees (about 200 m) a side, once
     * every 600 s, each channel a leg further on: no libm needed */
    const double side = 0.002;
    const int64_t leg_ms = 150000;
    int64_t t = (t_ms % (4 * leg_ms) + 4 * leg_ms + (int64_t)(ch % 4) * leg_ms) % (4 * leg_ms);
    int leg = (int)(t / leg_ms);
    double f = (double)(t % leg_ms) / (double)leg_ms;
    static const double x0[4] = {0, 1, 1, 0}, y0[4] = {0, 0, 1, 1};
    static const double dx[4] = {1, 0, -1, 0}, dy[4] = {0, 1, 0, -1};
    static const double heading[4] = {90.0, 0.0, 270.0, 180.0}; /* clockwise from north */
    *lon = d->lon + side * (x0[leg] + dx[leg] * f);
    *lat = d->lat + side * (y0[leg] + dy[leg] * f);
    *speed = side * 111.32 / ((double)leg_ms / 3600000.0);     /* km/h */
    *direction = heading[leg];
}

/* "%.6f" of v into out (at least 24 bytes); its length. */
static size_t fmt_deg(double v, char *out)
{
    int n = snprintf(out, 24, "%.6f", v);
    return n > 0 && n < 24 ? (size_t)n : 0;
}

/* ---- answers ---------------------------------------------------------------------- */

/* Scratch strings of one catalog item. */
typedef struct {
    char id[GB_CAM_ID_LEN];
    char name[GB_CAM_TEXT_MAX + 16];
    char lon[24], lat[24];
    char ptz[2];
} item_text;

static void catalog_item(const gb_cam_device *d, uint32_t ch, int gb, item_text *t,
                         gb_manscdp_catalog_item *it)
{
    static const char on[] = "ON", off[] = "OFF";
    memset(it, 0, sizeof *it);
    gb_cam_channel_id(d, ch, t->id);
    size_t nl = gb_cam_channel_name(d, ch, gb, t->name, sizeof t->name);
    it->device_id = (gb_manscdp_str){t->id, GB_CAM_ID_LEN};
    it->name = (gb_manscdp_str){t->name, nl};
    it->manufacturer = text(d, GB_CAM_F_MANUFACTURER, gb);
    it->model = text(d, GB_CAM_F_MODEL, gb);
    it->owner = text(d, GB_CAM_F_OWNER, gb);
    unsigned cc = d->prof->civil_code_digits;
    if (cc && d->id_len >= cc && all_digits(d->id, cc))
        it->civil_code = (gb_manscdp_str){d->id, cc};
    it->address = text(d, GB_CAM_F_ADDRESS, gb);
    it->parental = GB_MANSCDP_STR("0");
    it->parent_id = (gb_manscdp_str){d->id, d->id_len};
    /* each field: the channel's own, else its profile's, else derived */
    const gb_cam_chan_fields *own = NULL, *pf = &d->prof->chan, *from[GB_CAM_O_ALL + 1];
    if (d->fields_fn && ch < d->nchan && (d->chan[ch] & GB_CAM_CH_CUSTOM_FIELDS))
        own = d->fields_fn(d->name_arg, ch);
    for (unsigned bit = 1; bit <= GB_CAM_O_ALL; bit <<= 1)
        from[bit] = own && (own->set & bit) ? own : (pf->set & bit) ? pf : NULL;
    const gb_cam_chan_fields *o;
    if ((o = from[GB_CAM_O_CIVIL_CODE]))
        it->civil_code = (gb_manscdp_str){o->civil_code, o->civil_len};
    if ((o = from[GB_CAM_O_PARENTAL]))
        it->parental = o->parental ? GB_MANSCDP_STR("1") : GB_MANSCDP_STR("0");
    if ((o = from[GB_CAM_O_PARENT_ID]))
        it->parent_id = (gb_manscdp_str){o->parent_id, o->parent_len};
    if (!(d->prof->quirks & GB_CAM_Q_NO_SAFETY_WAY))
        it->safety_way = GB_MANSCDP_STR("0");
    it->register_way = GB_MANSCDP_STR("1");
    it->secrecy = GB_MANSCDP_STR("0");
    int is_on = ch >= d->nchan || !(d->chan[ch] & GB_CAM_CH_OFF);
    it->status = is_on ? (gb_manscdp_str){on, 2} : (gb_manscdp_str){off, 3};
    if ((o = from[GB_CAM_O_POSITION])) {
        it->longitude = (gb_manscdp_str){t->lon, fmt_deg(o->lon, t->lon)};
        it->latitude = (gb_manscdp_str){t->lat, fmt_deg(o->lat, t->lat)};
    } else if (d->prof->quirks & GB_CAM_Q_POSITION_ZERO) {
        it->longitude = GB_MANSCDP_STR("0.0");
        it->latitude = GB_MANSCDP_STR("0.0");
    } else if (d->prof->quirks & GB_CAM_Q_POSITION) {
        double lon, lat, sp, dir;
        gb_cam_position(d, ch, 0, &lon, &lat, &sp, &dir);
        it->longitude = (gb_manscdp_str){t->lon, fmt_deg(lon, t->lon)};
        it->latitude = (gb_manscdp_str){t->lat, fmt_deg(lat, t->lat)};
    }
    unsigned ptz = (o = from[GB_CAM_O_PTZ_TYPE]) ? o->ptz_type : d->prof->ptz_type;
    if (ptz) {
        t->ptz[0] = (char)('0' + ptz);
        it->ptz_type = (gb_manscdp_str){t->ptz, 1};
    }
}

/* The largest n in [1, hi] for which write(n) fits in budget, written
 * into buf; n = 1 within cap when even one does not fit the budget. */
typedef size_t (*part_fn)(gb_manscdp_writer *w, const void *ctx, uint32_t n);

static size_t fit_part(char *buf, size_t cap, size_t budget, uint32_t hi, part_fn write,
                       const void *ctx, uint32_t *n)
{
    gb_manscdp_writer w;
    if (budget > cap)
        budget = cap;
    uint32_t lo = 1, best = 0;
    size_t len;
    if (hi == 0)
        hi = 1;
    /* try all first (the usual case for small lists), then bisect */
    gb_manscdp_w_init(&w, buf, budget);
    if (write(&w, ctx, hi)) {
        best = hi;
    } else if (w.err == GB_MANSCDP_W_OVERFLOW) {
        uint32_t top = hi - 1;
        while (lo <= top) {
            uint32_t mid = lo + (top - lo) / 2;
            gb_manscdp_w_init(&w, buf, budget);
            if (write(&w, ctx, mid)) {
                best = mid;
                lo = mid + 1;
            } else if (w.err == GB_MANSCDP_W_OVERFLOW) {
                top = mid - 1;
            } else {
                return 0;
            }
        }
    } else {
        return 0;
    }
    if (!best) {
        gb_manscdp_w_init(&w, buf, cap);
        len = write(&w, ctx, 1);
        *n = len ? 1 : 0;
        return len;
    }
    gb_manscdp_w_init(&w, buf, budget);
    len = write(&w, ctx, best); /* the last try may have been a larger one */
    *n = best;
    return len;
}

typedef struct {
    const gb_cam_device *d;
    const gb_manscdp_head *h;
    uint32_t sum, first, ch;
    const gb_cam_records *r;
} part_ctx;

static size_t write_catalog_n(gb_manscdp_writer *w, const void *vctx, uint32_t n)
{
    const part_ctx *c = vctx;
    item_text texts[GB_CAM_PART_ITEMS];
    gb_manscdp_catalog_item items[GB_CAM_PART_ITEMS];
    int gb = gb_cam_charset_gb(c->h->charset);
    for (uint32_t i = 0; i < n; i++)
        catalog_item(c->d, c->first + i, gb, &texts[i], &items[i]);
    return gb_manscdp_write_catalog(w, c->h, c->sum, items, n);
}

static uint32_t part_limit(uint32_t left, uint32_t max_items)
{
    uint32_t hi = left < GB_CAM_PART_ITEMS ? left : GB_CAM_PART_ITEMS;
    if (max_items && max_items < hi)
        hi = max_items;
    return hi;
}

size_t gb_cam_catalog_part(char *buf, size_t cap, size_t budget, const gb_cam_device *d,
                           const gb_manscdp_head *h, uint32_t sum, uint32_t first,
                           uint32_t left, uint32_t max_items, uint32_t *n)
{
    part_ctx c = {d, h, sum, first, 0, NULL};
    *n = 0;
    if (left == 0) { /* no channels: SumNum 0 and no list (2022 Annex M) */
        gb_manscdp_writer w;
        gb_manscdp_w_init(&w, buf, cap);
        return gb_manscdp_write_catalog(&w, h, 0, NULL, 0);
    }
    return fit_part(buf, cap, budget, part_limit(left, max_items), write_catalog_n, &c, n);
}

size_t gb_cam_write_device_info(gb_manscdp_writer *w, const gb_cam_device *d,
                                const gb_manscdp_head *h)
{
    int gb = gb_cam_charset_gb(h->charset);
    gb_manscdp_str name = text(d, GB_CAM_F_DEVICE_NAME, gb);
    if (!name.p)
        name = text(d, GB_CAM_F_MODEL, gb);
    gb_manscdp_str dtype = text(d, GB_CAM_F_DEVICE_TYPE, gb);
    if (!dtype.p && !d->prof->max_camera && !d->prof->max_alarm_field) {
        gb_manscdp_device_info info = {
            .device_name = name,
            .result = GB_MANSCDP_STR("OK"),
            .manufacturer = text(d, GB_CAM_F_MANUFACTURER, gb),
            .model = text(d, GB_CAM_F_MODEL, gb),
            .firmware = text(d, GB_CAM_F_FIRMWARE, gb),
            .channel = (int32_t)d->nchan,
        };
        return gb_manscdp_write_device_info(w, h, &info);
    }
    /* the vendors' longer form (DeviceType, MaxCamera, MaxAlarm), in their order */
    gb_manscdp_w_begin(w, h->charset, GB_MANSCDP_RESPONSE, GB_MANSCDP_CMD_DEVICE_INFO,
                       (gb_manscdp_str){NULL, 0}, h->sn, h->device_id);
    gb_manscdp_w_field(w, "DeviceName", name);
    gb_manscdp_w_field(w, "Result", GB_MANSCDP_STR("OK"));
    gb_manscdp_w_field(w, "DeviceType", dtype);
    gb_manscdp_w_field(w, "Manufacturer", text(d, GB_CAM_F_MANUFACTURER, gb));
    gb_manscdp_w_field(w, "Model", text(d, GB_CAM_F_MODEL, gb));
    gb_manscdp_w_field(w, "Firmware", text(d, GB_CAM_F_FIRMWARE, gb));
    if (d->prof->max_camera)
        gb_manscdp_w_field_u64(w, "MaxCamera", d->prof->max_camera);
    if (d->prof->max_alarm_field)
        gb_manscdp_w_field_u64(w, "MaxAlarm", d->prof->max_alarm);
    gb_manscdp_w_field_u64(w, "Channel", d->nchan);
    return gb_manscdp_w_end(w);
}

size_t gb_cam_write_device_status(gb_manscdp_writer *w, const gb_cam_device *d,
                                  const gb_manscdp_head *h, long target)
{
    char now[19];
    gb_cam_format_time(d->local_ms, now);
    int recording = 0, online = 1;
    if (target >= 0 && (uint32_t)target < d->nchan) {
        recording = (d->chan[target] & GB_CAM_CH_RECORD) != 0;
        online = !(d->chan[target] & GB_CAM_CH_OFF);
    } else {
        for (uint32_t i = 0; i < d->nchan && !recording; i++)
            recording = (d->chan[i] & GB_CAM_CH_RECORD) != 0;
    }
    char ids[GB_CAM_MAX_ALARM_IN][GB_CAM_ID_LEN];
    gb_manscdp_alarm_status alarms[GB_CAM_MAX_ALARM_IN];
    size_t na = target == GB_CAM_TARGET_DEVICE ? d->prof->max_alarm : 0;
    for (size_t k = 0; k < na; k++) {
        gb_cam_alarm_id(d, (uint32_t)k, ids[k]);
        alarms[k].device_id = (gb_manscdp_str){ids[k], GB_CAM_ID_LEN};
        alarms[k].duty_status = (d->alarm_bits >> k) & 1 ? GB_MANSCDP_STR("ALARM")
                                : (d->flags & GB_CAM_DEV_DISARMED) ? GB_MANSCDP_STR("OFFDUTY")
                                                                   : GB_MANSCDP_STR("ONDUTY");
    }
    gb_manscdp_device_status st = {
        .result = GB_MANSCDP_STR("OK"),
        .online = online ? GB_MANSCDP_STR("ONLINE") : GB_MANSCDP_STR("OFFLINE"),
        .status = GB_MANSCDP_STR("OK"),
        .encode = online ? GB_MANSCDP_STR("ON") : GB_MANSCDP_STR("OFF"),
        .record = recording ? GB_MANSCDP_STR("ON") : GB_MANSCDP_STR("OFF"),
        .device_time = {now, sizeof now},
        .alarms = na ? alarms : NULL,
        .n_alarms = na,
    };
    return gb_manscdp_write_device_status(w, h, &st);
}

static size_t fmt_u32(char *out, uint32_t v)
{
    int n = snprintf(out, 11, "%u", (unsigned)v);
    return n > 0 ? (size_t)n : 0;
}

size_t gb_cam_write_config(gb_manscdp_writer *w, const gb_cam_device *d,
                           const gb_manscdp_head *h, int basic)
{
    if (!basic)
        return gb_cam_write_result(w, h, GB_MANSCDP_CMD_CONFIG_DOWNLOAD, 0);
    int gb = gb_cam_charset_gb(h->charset);
    char e[11], hi[11], hc[11];
    gb_manscdp_str name = text(d, GB_CAM_F_DEVICE_NAME, gb);
    if (!name.p)
        name = text(d, GB_CAM_F_MODEL, gb);
    gb_manscdp_basic_param bp = {
        .result = GB_MANSCDP_STR("OK"),
        .name = name,
        .expiration = {e, fmt_u32(e, d->expires)},
        .heartbeat_interval = {hi, fmt_u32(hi, d->heartbeat_interval)},
        .heartbeat_count = {hc, fmt_u32(hc, d->heartbeat_count)},
    };
    return gb_manscdp_write_basic_param(w, h, &bp);
}

size_t gb_cam_write_presets(gb_manscdp_writer *w, const gb_cam_device *d,
                            const gb_manscdp_head *h)
{
    int gb = gb_cam_charset_gb(h->charset);
    char ids[GB_CAM_MAX_PRESETS][11];
    char names[GB_CAM_MAX_PRESETS][GB_CAM_TEXT_MAX + 8];
    gb_manscdp_preset list[GB_CAM_MAX_PRESETS];
    gb_bytes tpl = gb && d->prof->gb18030[GB_CAM_F_PRESET_NAME].p
                       ? d->prof->gb18030[GB_CAM_F_PRESET_NAME]
                       : d->prof->utf8[GB_CAM_F_PRESET_NAME];
    if (!tpl.n)
        tpl = (gb_bytes){"Preset {n}", 10};
    size_t n = d->prof->presets;
    for (size_t k = 0; k < n; k++) {
        list[k].preset_id = (gb_manscdp_str){ids[k], fmt_u32(ids[k], (uint32_t)k + 1)};
        list[k].preset_name =
            (gb_manscdp_str){names[k], expand(tpl, (uint32_t)k + 1, names[k], sizeof names[k])};
    }
    return gb_manscdp_write_preset_list(w, h, list, n);
}

size_t gb_cam_write_result(gb_manscdp_writer *w, const gb_manscdp_head *h,
                           gb_manscdp_cmd cmd, int ok)
{
    return gb_manscdp_write_result(w, h, cmd,
                                   ok ? GB_MANSCDP_STR("OK") : GB_MANSCDP_STR("ERROR"));
}

/* ---- recordings ---------------------------------------------------------------------- */

/* Start of the first file that overlaps r->start. */
static int64_t first_file(const gb_cam_records *r)
{
    int64_t seg = (int64_t)r->seg_s * 1000;
    return floor_div(r->start, seg) * seg;
}

uint32_t gb_cam_record_count(const gb_cam_records *r)
{
    if (!r->kind_ok || r->seg_s == 0 || r->end <= r->start)
        return 0;
    int64_t seg = (int64_t)r->seg_s * 1000;
    int64_t n = (r->end - first_file(r) + seg - 1) / seg;
    return n > (int64_t)r->max ? r->max : (uint32_t)n;
}

typedef struct {
    char start[19], end[19];
    char path[64];
} record_text;

static size_t write_records_n(gb_manscdp_writer *w, const void *vctx, uint32_t n)
{
    const part_ctx *c = vctx;
    const gb_cam_device *d = c->d;
    int gb = gb_cam_charset_gb(c->h->charset);
    char id[GB_CAM_ID_LEN], name[GB_CAM_TEXT_MAX + 16];
    record_text texts[GB_CAM_PART_ITEMS];
    gb_manscdp_record_item items[GB_CAM_PART_ITEMS];
    gb_cam_channel_id(d, c->ch, id);
    size_t nl = gb_cam_channel_name(d, c->ch, gb, name, sizeof name);
    int64_t seg = (int64_t)c->r->seg_s * 1000, t0 = first_file(c->r);
    for (uint32_t i = 0; i < n; i++) {
        int64_t s = t0 + (int64_t)(c->first + i) * seg, e = s + seg;
        if (e > c->r->end)
            e = c->r->end;
        gb_cam_format_time(s, texts[i].start);
        gb_cam_format_time(e, texts[i].end);
        int pl = snprintf(texts[i].path, sizeof texts[i].path, "/record/%.*s/%.4s%.2s%.2s%.2s%.2s%.2s.mp4",
                          GB_CAM_ID_LEN, id, texts[i].start, texts[i].start + 5,
                          texts[i].start + 8, texts[i].start + 11, texts[i].start + 14,
                          texts[i].start + 17);
        items[i] = (gb_manscdp_record_item){
            .device_id = {id, GB_CAM_ID_LEN},
            .name = {name, nl},
            .file_path = {texts[i].path, pl > 0 ? (size_t)pl : 0},
            .address = text(d, GB_CAM_F_ADDRESS, gb),
            .start_time = {texts[i].start, 19},
            .end_time = {texts[i].end, 19},
            .secrecy = GB_MANSCDP_STR("0"),
            .type = GB_MANSCDP_STR("time"),
        };
    }
    return gb_manscdp_write_record_info(w, c->h, (gb_manscdp_str){name, nl}, c->sum, items, n);
}

size_t gb_cam_record_part(char *buf, size_t cap, size_t budget, const gb_cam_device *d,
                          const gb_manscdp_head *h, uint32_t ch, const gb_cam_records *r,
                          uint32_t sum, uint32_t first, uint32_t left, uint32_t max_items,
                          uint32_t *n)
{
    part_ctx c = {d, h, sum, first, ch, r};
    *n = 0;
    if (left == 0) {
        gb_manscdp_writer w;
        gb_manscdp_w_init(&w, buf, cap);
        return write_records_n(&w, &c, 0);
    }
    return fit_part(buf, cap, budget, part_limit(left, max_items), write_records_n, &c, n);
}

/* ---- notifications ------------------------------------------------------------------ */

size_t gb_cam_write_catalog_notify(gb_manscdp_writer *w, const gb_cam_device *d,
                                   gb_manscdp_charset cs, uint64_t sn, uint32_t ch)
{
    int gb = gb_cam_charset_gb(cs);
    item_text t;
    gb_manscdp_catalog_item it;
    catalog_item(d, ch, gb, &t, &it);
    gb_manscdp_w_begin(w, cs, GB_MANSCDP_NOTIFY, GB_MANSCDP_CMD_CATALOG,
                       (gb_manscdp_str){NULL, 0}, sn, (gb_manscdp_str){d->id, d->id_len});
    gb_manscdp_w_field_u64(w, "SumNum", 1);
    gb_manscdp_w_open_num(w, "DeviceList", 1);
    gb_manscdp_w_open(w, "Item", NULL, (gb_manscdp_str){NULL, 0});
    const struct {
        const char *name;
        gb_manscdp_str v;
    } fields[] = {
        {"DeviceID", it.device_id}, {"Name", it.name}, {"Manufacturer", it.manufacturer},
        {"Model", it.model}, {"Owner", it.owner}, {"CivilCode", it.civil_code},
        {"Address", it.address}, {"Parental", it.parental}, {"ParentID", it.parent_id},
        {"SafetyWay", it.safety_way}, {"RegisterWay", it.register_way},
        {"Secrecy", it.secrecy}, {"Status", it.status}, {"Longitude", it.longitude},
        {"Latitude", it.latitude},
    };
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
        gb_manscdp_w_field(w, fields[k].name, fields[k].v);
    if (it.ptz_type.p) {
        gb_manscdp_w_open(w, "Info", NULL, (gb_manscdp_str){NULL, 0});
        gb_manscdp_w_field(w, "PTZType", it.ptz_type);
        gb_manscdp_w_close(w);
    }
    /* the change itself (2016 A.2.5: ON, OFF, VLOST, DEFECT, ADD, DEL, UPDATE) */
    gb_manscdp_w_field(w, "Event", it.status);
    return gb_manscdp_w_end(w);
}

size_t gb_cam_write_alarm(gb_manscdp_writer *w, const gb_cam_device *d,
                          gb_manscdp_charset cs, uint64_t sn, const gb_cam_alarm *a)
{
    char id[GB_CAM_ID_LEN], now[19], lon[24], lat[24];
    if (a->target >= 0)
        gb_cam_channel_id(d, (uint32_t)a->target, id);
    else
        gb_cam_alarm_id(d, (uint32_t)(GB_CAM_TARGET_ALARM - a->target), id);
    gb_cam_format_time(d->local_ms, now);
    gb_manscdp_w_begin(w, cs, GB_MANSCDP_NOTIFY, GB_MANSCDP_CMD_ALARM,
                       (gb_manscdp_str){NULL, 0}, sn, (gb_manscdp_str){id, GB_CAM_ID_LEN});
    gb_manscdp_w_field_u64(w, "AlarmPriority", a->priority);
    gb_manscdp_w_field_u64(w, "AlarmMethod", a->method);
    gb_manscdp_w_field(w, "AlarmTime", (gb_manscdp_str){now, sizeof now});
    if (a->description.n)
        gb_manscdp_w_field(w, "AlarmDescription", S(a->description));
    gb_manscdp_w_field(w, "Longitude", (gb_manscdp_str){lon, fmt_deg(d->lon, lon)});
    gb_manscdp_w_field(w, "Latitude", (gb_manscdp_str){lat, fmt_deg(d->lat, lat)});
    if (a->type) {
        gb_manscdp_w_open(w, "Info", NULL, (gb_manscdp_str){NULL, 0});
        gb_manscdp_w_field_u64(w, "AlarmType", a->type);
        gb_manscdp_w_close(w);
    }
    return gb_manscdp_w_end(w);
}

size_t gb_cam_write_position(gb_manscdp_writer *w, const gb_cam_device *d,
                             gb_manscdp_charset cs, uint64_t sn, uint32_t ch)
{
    char id[GB_CAM_ID_LEN], now[19], lon[24], lat[24], sp[24], dir[24];
    const char *who = d->id;
    size_t who_len = d->id_len;
    if (ch < d->nchan) {
        gb_cam_channel_id(d, ch, id);
        who = id;
        who_len = GB_CAM_ID_LEN;
    }
    double x, y, speed, direction;
    gb_cam_position(d, ch, d->local_ms, &x, &y, &speed, &direction);
    gb_cam_format_time(d->local_ms, now);
    gb_manscdp_w_begin(w, cs, GB_MANSCDP_NOTIFY, GB_MANSCDP_CMD_MOBILE_POSITION,
                       (gb_manscdp_str){NULL, 0}, sn, (gb_manscdp_str){who, who_len});
    gb_manscdp_w_field(w, "Time", (gb_manscdp_str){now, sizeof now});
    gb_manscdp_w_field(w, "Longitude", (gb_manscdp_str){lon, fmt_deg(x, lon)});
    gb_manscdp_w_field(w, "Latitude", (gb_manscdp_str){lat, fmt_deg(y, lat)});
    int n = snprintf(sp, sizeof sp, "%.1f", speed);
    gb_manscdp_w_field(w, "Speed", (gb_manscdp_str){sp, n > 0 ? (size_t)n : 0});
    n = snprintf(dir, sizeof dir, "%.1f", direction);
    gb_manscdp_w_field(w, "Direction", (gb_manscdp_str){dir, n > 0 ? (size_t)n : 0});
    gb_manscdp_w_field(w, "Altitude", GB_MANSCDP_STR("0.0"));
    return gb_manscdp_w_end(w);
}
