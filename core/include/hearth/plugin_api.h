#ifndef HEARTH_PLUGIN_API_H
#define HEARTH_PLUGIN_API_H
/* The plugin boundary of hearthd, in C (SPEC §11, docs/plugin-sdk.md).
 *
 * A plugin is a shared module that exports two C symbols:
 *
 *   int hearth_plugin_version(int count, const int* versions);
 *       hearthd lists the ABI versions it supports; the plugin answers the one it picks (or,
 *       when it can use none of them, the version it was built for, which hearthd then refuses
 *       naming both).
 *   const hearth_plugin* hearth_plugin_entry(int version);
 *       the plugin's table for the version it picked.
 *
 * Rules every struct here follows:
 * - it starts with `size` (its sizeof as the side that filled it was built) and only grows at
 *   the end; a reader accepts any size >= the part it needs and treats members past `size` as
 *   absent (NULL / 0);
 * - strings are pointer + length (hearth_str), UTF-8, not NUL-terminated, valid for the call
 *   only: whoever keeps one copies it;
 * - text handed back to the caller goes through a hearth_out the caller provides, so nothing
 *   allocated on one side is freed on the other; a closure the plugin hands over (fn + user)
 *   comes with the plugin's own `release` function, which the host calls exactly once when it
 *   drops the closure;
 * - status codes are the values of hearth_code (0 = ok), the MQTT API's error codes;
 * - no exception, C++ type or allocation crosses: every function pointer the plugin provides
 *   returns HEARTH_CALL_THREW (with a message in its `error` out) instead of throwing, and the
 *   host then marks the plugin failed and stops it.
 *
 * Threading: the host calls into the plugin on its hub loop only. Every host function is for
 * the hub loop too, except log, post, respond and responder_release, which any thread may call.
 */

#include <stddef.h>
#include <stdint.h>

#include "hearth/abi_version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Members added to a struct after its first release default to zero in C++ initializer lists,
 * so a plugin's existing `{...}` lists stay warning-free when the struct grows. */
#ifdef __cplusplus
#define HEARTH_ADDED = {}
#else
#define HEARTH_ADDED
#endif

typedef struct hearth_str {
  const char* data;
  size_t size;
} hearth_str;

/* Where a callee writes text for its caller: write may be called several times; the pieces
 * are appended. A NULL write discards. */
typedef struct hearth_out {
  void* self;
  void (*write)(void* self, const char* data, size_t size);
} hearth_out;

/* What a plugin's function pointer returns when the plugin threw (the message is in its
 * `error` out). */
#define HEARTH_CALL_OK 0
#define HEARTH_CALL_THREW (-1)

/* The codes of docs/mqtt-api.md, in the order of hearth::ErrorCode; fixed numbers. */
enum hearth_code {
  HEARTH_OK = 0,
  HEARTH_INVALID_REQUEST = 1,
  HEARTH_UNKNOWN_METHOD = 2,
  HEARTH_NOT_FOUND = 3,
  HEARTH_FORBIDDEN = 4,
  HEARTH_NOT_OWNER = 5,
  HEARTH_SHARE_REQUIRED = 6,
  HEARTH_ALREADY_BOUND = 7,
  HEARTH_NOT_BINDABLE = 8,
  HEARTH_TOKEN_INVALID = 9,
  HEARTH_TOKEN_EXPIRED = 10,
  HEARTH_TOKEN_USED = 11,
  HEARTH_CONFLICT = 12,
  HEARTH_LIMIT_REACHED = 13,
  HEARTH_RATE_LIMITED = 14,
  HEARTH_OFFLINE = 15,
  HEARTH_TIMEOUT = 16,
  HEARTH_UNAVAILABLE = 17,
  HEARTH_INTERNAL = 18,
  HEARTH_STORAGE_FULL = 19
};

enum hearth_config_type {
  HEARTH_CFG_BOOL = 1,
  HEARTH_CFG_INT = 2,
  HEARTH_CFG_DOUBLE = 3,
  HEARTH_CFG_STRING = 4,
  HEARTH_CFG_DURATION = 5, /* "30s", "15m", "24h", "500ms" or an integer number of seconds */
  HEARTH_CFG_JSON = 6,     /* any YAML list or map, handed over as JSON */
  HEARTH_CFG_PATH = 7,     /* a file or directory; relative = to the config file's directory */
  HEARTH_CFG_ENUM = 8      /* a string, one of `choices` ("a|b|c") */
};

/* One declared configuration key of a plugin. Unknown keys are errors. An array of them is
 * read with the stride hearth_plugin::config_key_size, so this struct grows like the others. */
typedef struct hearth_config_key {
  const char* name;
  int type;                  /* hearth_config_type */
  const char* default_value; /* YAML text; NULL = required */
  double min;                /* INT/DOUBLE/DURATION (seconds); min > max = unbounded */
  double max;
  const char* description;
  const char* choices HEARTH_ADDED; /* ENUM: the allowed values, "|"-separated */
} hearth_config_key;

enum hearth_log_level { HEARTH_LOG_DEBUG = 0, HEARTH_LOG_INFO, HEARTH_LOG_WARN, HEARTH_LOG_ERROR };
enum hearth_scope { HEARTH_SCOPE_USER = 0, HEARTH_SCOPE_ADMIN = 1 };
enum hearth_state {
  HEARTH_STATE_STARTING = 0,
  HEARTH_STATE_RUNNING,
  HEARTH_STATE_WAITING,
  HEARTH_STATE_DEGRADED,
  HEARTH_STATE_FAILED,
  HEARTH_STATE_STOPPED
};

/* Opaque host objects. */
typedef struct hearth_ctx hearth_ctx;             /* one per running plugin */
typedef struct hearth_config hearth_config;       /* a validated plugin subtree */
typedef struct hearth_responder hearth_responder; /* answers one request */
typedef struct hearth_done hearth_done;           /* completes one transport command */

typedef struct hearth_config_value {
  uint32_t size;
  int32_t boolean;
  int64_t integer;
  double number;
  int64_t duration_ms;
} hearth_config_value;

typedef struct hearth_request {
  uint32_t size;
  hearth_str method;
  hearth_str id;
  hearth_str user_id;
  hearth_str client_id;
  hearth_str params_json; /* always a JSON object */
  int32_t is_admin;
} hearth_request;

typedef struct hearth_terminal {
  uint32_t size;
  hearth_str user_id;
  hearth_str client_id;
  hearth_str app_id;
  hearth_str device_model;
  hearth_str device_name;
  hearth_str open_id;
  int32_t online;
} hearth_terminal;

typedef struct hearth_device_report {
  uint32_t size;
  hearth_str device_id;
  hearth_str transport;
  hearth_str model;
  hearth_str name;
  hearth_str firmware;
  int32_t bind_window_sec;
  int32_t inventory_only;
} hearth_device_report;

typedef struct hearth_device_info {
  uint32_t size;
  hearth_str device_id;
  hearth_str transport;
  hearth_str model;
  hearth_str name;
  hearth_str firmware;
  hearth_str bind_mode;
  hearth_str owner_id;
  int32_t online;
} hearth_device_info;

typedef struct hearth_broker_acl {
  uint32_t size;
  hearth_str type;
  hearth_str topic;
  int32_t allow;
} hearth_broker_acl;

typedef struct hearth_broker_info {
  uint32_t size;
  int32_t port;
  int32_t dynsec;
} hearth_broker_info;

/* Closures the plugin hands to the host. Each returns HEARTH_CALL_OK or HEARTH_CALL_THREW. */
typedef void (*hearth_release_fn)(void* user);
typedef int (*hearth_task_fn)(void* user, hearth_out error);
typedef int (*hearth_handler_fn)(void* user, const hearth_request* request,
                                 hearth_responder* responder, hearth_out error);
typedef int (*hearth_event_fn)(void* user, hearth_str topic, hearth_str data_json,
                               hearth_out error);
typedef int (*hearth_result_fn)(void* user, int32_t code, hearth_str text, hearth_out error);
typedef int (*hearth_detail_fn)(void* user, hearth_str device_id, hearth_str user_id,
                                hearth_out json, hearth_out error);
/* Synchronous visitors (called during the host call that took them; they do not throw). */
typedef void (*hearth_terminal_fn)(void* user, const hearth_terminal* terminal);
typedef void (*hearth_device_info_fn)(void* user, const hearth_device_info* info);
typedef void (*hearth_string_fn)(void* user, hearth_str s);
typedef int (*hearth_row_fn)(void* user, hearth_str key, hearth_str value); /* 0 = stop */
typedef int32_t (*hearth_body_fn)(void* user, hearth_out message);          /* a hearth_code */
typedef void (*hearth_counter_fn)(void* user, hearth_str plugin, hearth_str name, int64_t value);

typedef struct hearth_transport {
  uint32_t size;
  int (*present)(void* user, hearth_str device_id, int32_t* present, hearth_out error);
  /* Answers through host->done_complete(done, ...) exactly once, on the hub loop. */
  int (*control)(void* user, hearth_str device_id, hearth_str user_id, hearth_str command,
                 hearth_str params_json, hearth_done* done, hearth_out error);
} hearth_transport;

/* What the host offers; handed to create() and validate(). */
typedef struct hearth_host_api {
  uint32_t size;
  uint32_t abi_version;

  void (*log)(hearth_ctx* ctx, int level, hearth_str message);
  int64_t (*now_ms)(hearth_ctx* ctx);    /* wall clock, ms since the epoch */
  int64_t (*steady_ns)(hearth_ctx* ctx); /* monotonic */
  const hearth_config* (*config)(hearth_ctx* ctx);
  /* A declared key of `type`: numbers in *value, STRING/PATH/ENUM/JSON text through `text`.
   * HEARTH_NOT_FOUND for an undeclared key, HEARTH_INVALID_REQUEST for another type. */
  int32_t (*config_get)(const hearth_config* config, hearth_str key, int type,
                        hearth_config_value* value, hearth_out text);

  int32_t (*kv_put)(hearth_ctx* ctx, hearth_str collection, hearth_str key, hearth_str value,
                    hearth_out error);
  int32_t (*kv_get)(hearth_ctx* ctx, hearth_str collection, hearth_str key, int32_t* found,
                    hearth_out value, hearth_out error);
  int32_t (*kv_erase)(hearth_ctx* ctx, hearth_str collection, hearth_str key, hearth_out error);
  int32_t (*kv_scan)(hearth_ctx* ctx, hearth_str collection, hearth_str from_key, uint64_t limit,
                     hearth_row_fn row, void* user, hearth_out error);
  int32_t (*kv_count)(hearth_ctx* ctx, hearth_str collection, int64_t* count, hearth_out error);
  int32_t (*kv_transaction)(hearth_ctx* ctx, hearth_body_fn body, void* user, hearth_out error);

  int32_t (*register_method)(hearth_ctx* ctx, hearth_str method, int scope, hearth_handler_fn fn,
                             void* user, hearth_release_fn release, hearth_out error);
  /* code 0: text is the result JSON object; else text is the error message. Any thread. The
   * first answer wins; responder_release when the plugin holds it no more (unanswered = the
   * host answers INTERNAL). */
  void (*respond)(hearth_responder* responder, int32_t code, hearth_str text);
  void (*responder_release)(hearth_responder* responder);

  uint64_t (*send_event)(hearth_ctx* ctx, hearth_str user_id, hearth_str client_id,
                         hearth_str event, hearth_str data_json);
  int32_t (*terminal)(hearth_ctx* ctx, hearth_str user_id, hearth_str client_id,
                      hearth_terminal_fn fn, void* user); /* 1 found, 0 not */
  int32_t (*terminal_by_open_id)(hearth_ctx* ctx, hearth_str open_id, hearth_terminal_fn fn,
                                 void* user);
  void (*terminals)(hearth_ctx* ctx, hearth_str user_id, hearth_terminal_fn fn, void* user);
  int32_t (*user_exists)(hearth_ctx* ctx, hearth_str user_id);

  void (*subscribe)(hearth_ctx* ctx, hearth_str topic, hearth_event_fn fn, void* user,
                    hearth_release_fn release);
  void (*publish)(hearth_ctx* ctx, hearth_str topic, hearth_str data_json);

  /* Timer ids are never reused; cancel of a fired or unknown id does nothing. */
  uint64_t (*start_timer)(hearth_ctx* ctx, int64_t delay_ms, hearth_task_fn fn, void* user,
                          hearth_release_fn release);
  void (*cancel_timer)(hearth_ctx* ctx, uint64_t id);
  /* Any thread. Work posted for a plugin that has stopped is released without running. */
  void (*post)(hearth_ctx* ctx, hearth_task_fn fn, void* user, hearth_release_fn release);

  void (*set_state)(hearth_ctx* ctx, int state, hearth_str detail_json);
  /* A counter of this plugin, shown in hub/status (details.<plugin>.counters) and /metrics. */
  void (*counter_add)(hearth_ctx* ctx, hearth_str name, int64_t delta);

  /* Devices (transport plugins). */
  int32_t (*register_transport)(hearth_ctx* ctx, hearth_str transport,
                                const hearth_transport* fns, void* user,
                                hearth_release_fn release, hearth_out error);
  void (*done_complete)(hearth_done* done, int32_t code, hearth_str text);
  int32_t (*device_report)(hearth_ctx* ctx, const hearth_device_report* report,
                           hearth_out error);
  void (*set_online)(hearth_ctx* ctx, hearth_str device_id, int32_t online);
  int32_t (*present_provision_token)(hearth_ctx* ctx, hearth_str device_id, hearth_str token,
                                     hearth_out user_or_error);
  int32_t (*report_reset)(hearth_ctx* ctx, hearth_str device_id, hearth_out error);
  int32_t (*refuse_provision_token)(hearth_ctx* ctx, hearth_str device_id, hearth_str token,
                                    hearth_out error);
  uint64_t (*notify_bound_users)(hearth_ctx* ctx, hearth_str device_id, hearth_str event,
                                 hearth_str data_json);
  void (*bound_users)(hearth_ctx* ctx, hearth_str device_id, hearth_string_fn fn, void* user);
  int32_t (*device_info)(hearth_ctx* ctx, hearth_str device_id, hearth_device_info_fn fn,
                         void* user); /* 1 found, 0 not */
  /* done(code, result JSON or message) runs once, on the hub loop. */
  void (*control_as)(hearth_ctx* ctx, hearth_str user_id, hearth_str device_id,
                     hearth_str command, hearth_str params_json, hearth_str via,
                     hearth_result_fn done, void* user, hearth_release_fn release);
  int32_t (*add_detail_provider)(hearth_ctx* ctx, hearth_str key, hearth_detail_fn fn,
                                 void* user, hearth_release_fn release, hearth_out error);

  /* The control plane's broker and accounts on it (home_assistant). */
  void (*local_broker)(hearth_ctx* ctx, hearth_broker_info* info, hearth_out host);
  void (*set_broker_account)(hearth_ctx* ctx, hearth_str username, hearth_str password,
                             const hearth_broker_acl* acls, size_t acl_count, size_t acl_size,
                             hearth_result_fn done, void* user, hearth_release_fn release);
  void (*state_dir)(hearth_ctx* ctx, hearth_out dir);

  /* Added in ABI 2 after its first release: check `size` before calling (a shorter table has
   * none). Every plugin's counters as hub/status shows them (details.<plugin>.counters, the
   * calling plugin's own included), visited during the call in order of plugin, then name.
   * The web plugin serves them on /metrics. */
  void (*plugin_counters)(hearth_ctx* ctx, hearth_counter_fn fn, void* user);
  /* Added in ABI 2 after its first release (check `size`, as above). send_event, and then
   * done(code, "") runs once, on the hub loop and never inside this call, when the broker has
   * acknowledged (MQTT PUBACK) every terminal's copy: HEARTH_OK; or HEARTH_UNAVAILABLE when the
   * broker connection went before that, or a copy could not be handed to it (that copy may or
   * may not have arrived). Returns the number of terminals it was sent to; with 0, done is
   * released without running. For an event whose loss must undo something (coop_relay ends a
   * command only once its relayed reply is at the broker). */
  uint64_t (*send_event_confirmed)(hearth_ctx* ctx, hearth_str user_id, hearth_str client_id,
                                   hearth_str event, hearth_str data_json, hearth_result_fn done,
                                   void* user, hearth_release_fn release);
} hearth_host_api;

/* What the plugin offers. Members up to `stop` are required; later ones are optional (a
 * table that ends before them has none). */
typedef struct hearth_plugin {
  uint32_t size;
  uint32_t abi_version; /* the version hearth_plugin_version picked */
  const char* name;     /* [a-z0-9_]+, also the config key under plugins: */
  const char* version;
  const hearth_config_key* config_keys;
  size_t config_key_count;
  size_t config_key_size; /* the stride of config_keys */
  /* Makes the instance; nothing runs until start. */
  int (*create)(const hearth_host_api* host, hearth_ctx* ctx, void** instance,
                hearth_out error);
  void (*destroy)(void* instance);
  /* Returns a hearth_code (message in error), or HEARTH_CALL_THREW. */
  int32_t (*start)(void* instance, hearth_out error);
  int (*stop)(void* instance, hearth_out error);
  /* Optional: checks a validated subtree beyond its declared types (--check-config, SIGHUP)
   * without an instance; calls report(sink, key, message) for each problem. Returns
   * HEARTH_CALL_OK or HEARTH_CALL_THREW. */
  int (*validate)(const hearth_host_api* host, const hearth_config* config,
                  void (*report)(void* sink, hearth_str key, hearth_str message), void* sink);
} hearth_plugin;

typedef int (*hearth_plugin_version_fn)(int count, const int* versions);
typedef const hearth_plugin* (*hearth_plugin_entry_fn)(int version);

#ifdef __cplusplus
}
#endif

#endif /* HEARTH_PLUGIN_API_H */
