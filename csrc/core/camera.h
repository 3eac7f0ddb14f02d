/*
 * camera.h - what a simulated GB/T 28181 camera says to a platform:
 * vendor profiles, channels generated from the device ID and an index, and
 * the MANSCDP+xml bodies of its answers and notifications.  Sans-IO and
 * allocation-free: every function writes into the caller's buffer, and a
 * channel is an index plus one state byte, never a stored record, so a
 * million devices with 64 channels each cost what their state bytes cost.
 *
 * The device fleet (device.h) routes platform requests here; this module
 * knows nothing about SIP, transactions or time beyond the wall-clock value
 * it is handed.  Answers follow GB/T 28181-2016 Annex A.2.6 and use the
 * writer of manscdp.h; which fields a vendor fills, and how, is the
 * profile's business (gb_cam_presets, each fact with its source).
 *
 * Channel IDs (Annex D, 20 digits): the device ID's first 10 digits (centre
 * and industry code), the channel type code (131 camera by default, the
 * code IP camera channels commonly report), then a 7-digit serial.  A
 * simulated range gets consecutive blocks, (base + index) mod 10^7, so that
 * no two channels of a fleet share an ID.  A device added alone
 * (GB_CAM_BASE_FROM_ID) derives them from its own ID's last 7 digits: one
 * channel has that serial (a one-channel IPC 34020000001320000001 has
 * channel 34020000001310000001, as Hikvision and Dahua IPCs report it); n
 * channels put the index in the top digits and the device's serial below
 * (up to 10 channels: index * 10^6 + serial mod 10^6; 100: 10^5...), so
 * devices whose IDs differ in those low digits never share a channel ID.
 * Alarm inputs are numbered the same way with type code 134.
 */
#ifndef GBSIP_CAMERA_H
#define GBSIP_CAMERA_H

#include <stddef.h>
#include <stdint.h>

#include "digest.h"  /* gb_bytes */
#include "manscdp.h"

/* Channels a device may have (an NVR has 64 or 256). */
#define GB_CAM_MAX_CHANNELS 1024
/* Alarm inputs listed in DeviceStatus/Alarmstatus. */
#define GB_CAM_MAX_ALARM_IN 16
/* Items in one Catalog or RecordInfo part, at most. */
#define GB_CAM_PART_ITEMS 64
/* Presets listed in a PresetQuery answer. */
#define GB_CAM_MAX_PRESETS 64
/* Profiles one fleet holds. */
#define GB_CAM_MAX_PROFILES 16
/* A channel ID and an alarm input ID: 20 digits. */
#define GB_CAM_ID_LEN 20
/* Longest profile text kept (names are bytes in UTF-8 or GB18030). */
#define GB_CAM_TEXT_MAX 128

/* Text fields of a profile.  Each is held twice: UTF-8 and GB18030 bytes,
 * so an answer is written in the charset the query declared without
 * transcoding in C (the binding encodes both). */
typedef enum {
    GB_CAM_F_DEVICE_NAME = 0,  /* DeviceInfo DeviceName, ConfigDownload Name */
    GB_CAM_F_MANUFACTURER,
    GB_CAM_F_MODEL,
    GB_CAM_F_FIRMWARE,
    GB_CAM_F_DEVICE_TYPE,      /* DeviceInfo DeviceType ("IPC", "DVR"...); empty: left out */
    GB_CAM_F_OWNER,            /* Catalog Owner */
    GB_CAM_F_ADDRESS,          /* Catalog Address, RecordInfo Address */
    GB_CAM_F_CHANNEL_NAME,     /* template: {n} the 1-based channel number,
                                  {nn} the same on two digits, {nnn} three */
    GB_CAM_F_PRESET_NAME,      /* template, {n}... the preset number */
    GB_CAM_F_USER_AGENT,       /* User-Agent of this vendor's SIP stack; empty: the fleet's */
    GB_CAM_F__COUNT
} gb_cam_field;

/* Vendor behaviours a profile can switch on. */
enum {
    /* Catalog items carry no SafetyWay (the Dahua captures below). */
    GB_CAM_Q_NO_SAFETY_WAY = 1u << 0,
    /* Every MESSAGE the device sends as an answer has CSeq 20 (Dahua). */
    GB_CAM_Q_CSEQ_20 = 1u << 1,
    /* Catalog items carry the device's own Model for every channel (NVRs
     * report the recorder's model, not the camera's). */
    GB_CAM_Q_MODEL_PER_DEVICE = 1u << 2,
    /* Catalog items carry Longitude/Latitude: a place near Beijing the
     * channel patrols (gb_cam_position at time 0). */
    GB_CAM_Q_POSITION = 1u << 3,
    /* ... as 0.0 and 0.0: a recorder that does not know its cameras'
     * places (the Dahua NVR items below); wins over GB_CAM_Q_POSITION. */
    GB_CAM_Q_POSITION_ZERO = 1u << 4,
    GB_CAM_Q_ALL = (1u << 5) - 1
};

/* Catalog fields of one channel given by the user instead of the ones
 * derived from the profile and the device ID, each where its GB_CAM_O_*
 * bit is set in .set: a channel's own (kept only for the channels that
 * have any) win over its profile's (gb_cam_profile.chan). */
enum {
    GB_CAM_O_PARENTAL = 1u << 0,   /* Parental 0/1 (default 0) */
    GB_CAM_O_PARENT_ID = 1u << 1,  /* ParentID (default the device ID) */
    GB_CAM_O_CIVIL_CODE = 1u << 2, /* CivilCode (default the ID's first digits) */
    GB_CAM_O_POSITION = 1u << 3,   /* Longitude/Latitude (default: the quirk's) */
    GB_CAM_O_PTZ_TYPE = 1u << 4,   /* Info/PTZType 0..4, 0: no Info */
    GB_CAM_O_ALL = (1u << 5) - 1
};
/* Longest ParentID kept (the 2022 edition lists several, '/'-separated). */
#define GB_CAM_PARENT_MAX 64

typedef struct {
    uint8_t set;              /* GB_CAM_O_* */
    uint8_t parental;         /* 0 or 1 */
    uint8_t ptz_type;         /* 0..4 */
    uint8_t civil_len;        /* digits in civil_code (1..GB_CAM_ID_LEN) */
    uint8_t parent_len;       /* bytes in parent_id (1..GB_CAM_PARENT_MAX) */
    char civil_code[GB_CAM_ID_LEN];
    char parent_id[GB_CAM_PARENT_MAX];
    double lon, lat;          /* degrees: -180..180, -90..90 */
} gb_cam_chan_fields;

/* "" when the fields are valid, else why not (static text). */
const char *gb_cam_chan_fields_check(const gb_cam_chan_fields *o);

typedef struct {
    gb_bytes utf8[GB_CAM_F__COUNT];
    gb_bytes gb18030[GB_CAM_F__COUNT];   /* .p NULL: the UTF-8 bytes (ASCII text) */
    uint16_t channels;        /* default channel count */
    uint16_t channel_type;    /* type code of channel IDs: 131 or 132 */
    uint8_t max_alarm;        /* alarm inputs (<= GB_CAM_MAX_ALARM_IN) */
    uint8_t presets;          /* PresetQuery list length */
    uint8_t civil_code_digits;/* CivilCode: the first 2, 4, 6 or 8 digits of the ID */
    uint8_t ptz_type;         /* Info/PTZType 1..4; 0: no Info */
    uint8_t max_camera;       /* DeviceInfo MaxCamera; 0: left out */
    uint8_t max_alarm_field;  /* DeviceInfo MaxAlarm shown (1) or not (0) */
    uint32_t quirks;          /* GB_CAM_Q_* */
    gb_cam_chan_fields chan;  /* Catalog fields of every channel (set 0: derived) */
} gb_cam_profile;

/* A named preset: plain C strings (ASCII, so UTF-8 and GB18030 agree) and
 * where its facts come from. */
typedef struct {
    const char *name;
    const char *text[GB_CAM_F__COUNT];
    uint16_t channels, channel_type;
    uint8_t max_alarm, presets, civil_code_digits, ptz_type, max_camera, max_alarm_field;
    uint32_t quirks;
    const char *source;       /* the public documents the values come from */
} gb_cam_preset;

size_t gb_cam_preset_count(void);
const gb_cam_preset *gb_cam_preset_at(size_t i);
/* By name ("generic", "hikvision-ipc"...), NULL when unknown. */
const gb_cam_preset *gb_cam_preset_find(const char *name, size_t n);
/* The preset as a profile (its strings are static). */
void gb_cam_profile_from_preset(gb_cam_profile *p, const gb_cam_preset *pr);
/* "" when the profile is valid, else why not (static text). */
const char *gb_cam_profile_check(const gb_cam_profile *p);

/* Channel state bits (one byte per channel, kept by the fleet). */
enum {
    GB_CAM_CH_OFF = 1u << 0,      /* Status OFF (default ON) */
    GB_CAM_CH_RECORD = 1u << 1,   /* recording (RecordCmd Record) */
    GB_CAM_CH_ALARM = 1u << 2,    /* an alarm is raised on it */
    GB_CAM_CH_CUSTOM_NAME = 1u << 3, /* its name comes from the name hook */
    GB_CAM_CH_CUSTOM_FIELDS = 1u << 4, /* Catalog fields from the fields hook */
};

/* Device state bits. */
enum {
    GB_CAM_DEV_DISARMED = 1u << 0,  /* GuardCmd ResetGuard (default armed: ONDUTY) */
};

/* A custom channel name, in the charset asked for (gb: GB18030 bytes),
 * or 0 for the profile's template. */
typedef int (*gb_cam_name_fn)(void *arg, uint32_t ch, int gb, gb_bytes *out);
/* Channel ch's own Catalog fields, or NULL. */
typedef const gb_cam_chan_fields *(*gb_cam_fields_fn)(void *arg, uint32_t ch);

/* chan_base of a device whose channel serials come from its own ID. */
#define GB_CAM_BASE_FROM_ID UINT32_MAX

/* Everything an answer is made of, for one device. */
typedef struct {
    const gb_cam_profile *prof;
    const char *id;
    size_t id_len;
    uint32_t chan_base;       /* serial of channel 0 and alarm input 0, or
                                 GB_CAM_BASE_FROM_ID (see the top) */
    uint32_t nchan;
    const uint8_t *chan;      /* nchan state bytes (GB_CAM_CH_*) */
    uint8_t flags;            /* GB_CAM_DEV_* */
    uint16_t alarm_bits;      /* alarm inputs in alarm */
    uint32_t expires;         /* ConfigDownload Expiration (s) */
    uint32_t heartbeat_interval, heartbeat_count;
    int64_t local_ms;         /* wall clock as the platform's local time:
                                 ms since 1970 of the local fields */
    double lon, lat;          /* the device's place (degrees) */
    gb_cam_name_fn name_fn;
    gb_cam_fields_fn fields_fn; /* asked for channels with GB_CAM_CH_CUSTOM_FIELDS */
    void *name_arg;             /* the argument of both hooks */
} gb_cam_device;

/* ---- identities ---------------------------------------------------------- */

/* Channel ch's ID (GB_CAM_ID_LEN bytes, no NUL). */
void gb_cam_channel_id(const gb_cam_device *d, uint32_t ch, char out[GB_CAM_ID_LEN]);
/* Alarm input k's ID (type code 134). */
void gb_cam_alarm_id(const gb_cam_device *d, uint32_t k, char out[GB_CAM_ID_LEN]);

/* What an ID names: the device (GB_CAM_TARGET_DEVICE), channel index
 * (>= 0), an alarm input (GB_CAM_TARGET_ALARM - k), or nothing
 * (GB_CAM_TARGET_NONE). */
#define GB_CAM_TARGET_DEVICE (-1L)
#define GB_CAM_TARGET_NONE (-2L)
#define GB_CAM_TARGET_ALARM (-100L)
long gb_cam_target(const gb_cam_device *d, const char *id, size_t n);

/* Channel ch's name in the charset asked for (gb != 0: GB18030) into out;
 * its length (at most cap). */
size_t gb_cam_channel_name(const gb_cam_device *d, uint32_t ch, int gb, char *out, size_t cap);

/* Where channel ch is at wall time t (ms) in degrees, going round a square
 * of about 200 m beside the device's place; speed in km/h, direction in
 * degrees clockwise from north. */
void gb_cam_position(const gb_cam_device *d, uint32_t ch, int64_t t_ms, double *lon,
                     double *lat, double *speed, double *direction);

/* A GB/T 28181 §9.10 time "yyyy-MM-ddTHH:mm:ss" (19 bytes) from local
 * ms since 1970. */
void gb_cam_format_time(int64_t local_ms, char out[19]);
/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
int64_t gb_cam_days_from_civil(int64_t y, unsigned m, unsigned d);
/* The reverse for "yyyy-MM-ddTHH:mm:ss[.SSS]": local ms, or INT64_MIN. */
int64_t gb_cam_parse_time(const char *p, size_t n);

/* ---- answers (Annex A.2.6), each a whole body into w ---------------------- */

/* Whether the charset asks for GB text (GB2312/GBK/GB18030/none/other). */
int gb_cam_charset_gb(gb_manscdp_charset cs);

/* One Catalog part (Annex M multi-response): SumNum = sum, DeviceList of
 * the items from first on, as many as fit in budget bytes (at most left,
 * max_items and GB_CAM_PART_ITEMS; 0: no limit but those), at least one
 * even when it alone is larger (then within cap, buf's size).  Returns the
 * body length with *n the items written, or 0 (nothing fits in cap, or
 * invalid text). */
size_t gb_cam_catalog_part(char *buf, size_t cap, size_t budget, const gb_cam_device *d,
                           const gb_manscdp_head *h, uint32_t sum, uint32_t first,
                           uint32_t left, uint32_t max_items, uint32_t *n);

size_t gb_cam_write_device_info(gb_manscdp_writer *w, const gb_cam_device *d,
                                const gb_manscdp_head *h);
/* target: GB_CAM_TARGET_DEVICE or a channel index. */
size_t gb_cam_write_device_status(gb_manscdp_writer *w, const gb_cam_device *d,
                                  const gb_manscdp_head *h, long target);
/* ConfigDownload: BasicParam when asked (basic != 0), else Result ERROR. */
size_t gb_cam_write_config(gb_manscdp_writer *w, const gb_cam_device *d,
                           const gb_manscdp_head *h, int basic);
size_t gb_cam_write_presets(gb_manscdp_writer *w, const gb_cam_device *d,
                            const gb_manscdp_head *h);

/* Synthetic recordings of a channel: one file every seg_s seconds from
 * midnight, a day's files back from the present, none in the future; Type
 * "time".  How many fall in [start, end) (local ms), at most max. */
typedef struct {
    int64_t start, end;       /* local ms, the query's range clipped to now */
    uint32_t seg_s;           /* file length */
    uint32_t max;             /* at most this many listed */
    int kind_ok;              /* the query's Type admits scheduled recordings */
} gb_cam_records;

uint32_t gb_cam_record_count(const gb_cam_records *r);
/* One RecordInfo part of channel ch, split like Catalog. */
size_t gb_cam_record_part(char *buf, size_t cap, size_t budget, const gb_cam_device *d,
                          const gb_manscdp_head *h, uint32_t ch, const gb_cam_records *r,
                          uint32_t sum, uint32_t first, uint32_t left, uint32_t max_items,
                          uint32_t *n);

/* Response with Result (DeviceControl, DeviceConfig, subscriptions). */
size_t gb_cam_write_result(gb_manscdp_writer *w, const gb_manscdp_head *h,
                           gb_manscdp_cmd cmd, int ok);

/* ---- notifications ---------------------------------------------------------- */

/* Catalog change (NOTIFY, §9.11.2 / A.2.5): one item with Event ON/OFF. */
size_t gb_cam_write_catalog_notify(gb_manscdp_writer *w, const gb_cam_device *d,
                                   gb_manscdp_charset cs, uint64_t sn, uint32_t ch);
/* Alarm (§9.4, MESSAGE and NOTIFY): target a channel or alarm input index. */
typedef struct {
    long target;              /* channel index, or GB_CAM_TARGET_ALARM - k */
    uint8_t priority;         /* AlarmPriority 1..4 */
    uint8_t method;           /* AlarmMethod 1..7 (2: device alarm, 5: video) */
    uint8_t type;             /* Info/AlarmType, 0: no Info */
    gb_bytes description;     /* in the charset written */
} gb_cam_alarm;
size_t gb_cam_write_alarm(gb_manscdp_writer *w, const gb_cam_device *d,
                          gb_manscdp_charset cs, uint64_t sn, const gb_cam_alarm *a);
/* MobilePosition (NOTIFY, §9.11.1 / A.2.5) of channel ch (or the device
 * when it has no channel) at the device's wall time. */
size_t gb_cam_write_position(gb_manscdp_writer *w, const gb_cam_device *d,
                             gb_manscdp_charset cs, uint64_t sn, uint32_t ch);

#endif
