// A C guest for mpwasm's `worker` world: `square` (an integer, JSON in and
// out), `boom` (aborts: the instance traps, only that input fails), and a
// main for `mpwasm run`. The bindings in gen/ are wit-bindgen 0.60.0's for
// wit/mpwasm.wit (world `worker`), committed so an author needs only clang
// and wasi-libc; see README.md beside this file.
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/worker.h"

static const char *TASKS[] = {"square", "boom"};
#define NTASKS (sizeof TASKS / sizeof TASKS[0])

static worker_string_t dup_string(const char *s) {
  worker_string_t out;
  out.len = strlen(s);
  out.ptr = malloc(out.len ? out.len : 1);
  memcpy(out.ptr, s, out.len);
  return out;
}

static int name_is(const worker_string_t *name, const char *s) {
  return name->len == strlen(s) && memcmp(name->ptr, s, name->len) == 0;
}

void exports_mpwasm_runtime_tasks_names(worker_list_string_t *ret) {
  ret->len = NTASKS;
  ret->ptr = malloc(NTASKS * sizeof(worker_string_t));
  for (size_t i = 0; i < NTASKS; i++) ret->ptr[i] = dup_string(TASKS[i]);
}

// Reads a JSON integer (the whole payload); 0 if it is not one.
static int parse_i64(const uint8_t *p, size_t len, int64_t *out) {
  char buf[32];
  if (len == 0 || len >= sizeof buf) return 0;
  memcpy(buf, p, len);
  buf[len] = 0;
  char *end;
  errno = 0;
  long long v = strtoll(buf, &end, 10);
  while (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t') end++;
  if (errno || *end || end == buf) return 0;
  *out = v;
  return 1;
}

static void set_error(mpwasm_runtime_types_task_error_t *err, uint8_t tag, const char *msg) {
  err->tag = tag;
  err->val.failed = dup_string(msg);  // every variant carries one string
}

bool exports_mpwasm_runtime_tasks_call(worker_string_t *name, exports_mpwasm_runtime_tasks_codec_t codec,
                                       uint64_t first_index, exports_mpwasm_runtime_tasks_batch_t *inputs,
                                       exports_mpwasm_runtime_tasks_outcome_t *ret,
                                       exports_mpwasm_runtime_tasks_task_error_t *err) {
  (void)first_index;
  int square = name_is(name, "square"), boom = name_is(name, "boom");
  if (!square && !boom) {
    err->tag = MPWASM_RUNTIME_TYPES_TASK_ERROR_UNKNOWN_TASK;
    err->val.unknown_task = *name;  // ownership passes to the result
    mpwasm_runtime_types_batch_free(inputs);
    return false;
  }
  if (codec != MPWASM_RUNTIME_TYPES_CODEC_JSON) {
    set_error(err, MPWASM_RUNTIME_TYPES_TASK_ERROR_BAD_INPUT, "this guest reads JSON");
    worker_string_free(name);
    mpwasm_runtime_types_batch_free(inputs);
    return false;
  }
  // Results: at most 4 + 20 digits per input; failures: at most one per input.
  size_t count = 0;
  for (size_t pos = 0; pos + 4 <= inputs->len;) {
    uint32_t len;
    memcpy(&len, inputs->ptr + pos, 4);
    pos += 4 + (size_t)len;
    count++;
  }
  uint8_t *results = malloc(count * 28 + 1);
  mpwasm_runtime_types_tuple2_u32_task_error_t *failures = malloc((count ? count : 1) * sizeof *failures);
  size_t out = 0, nfail = 0, pos = 0;
  for (uint32_t i = 0; i < count; i++) {
    uint32_t len;
    memcpy(&len, inputs->ptr + pos, 4);
    pos += 4;
    if (pos + len > inputs->len) {
      set_error(err, MPWASM_RUNTIME_TYPES_TASK_ERROR_BAD_INPUT, "truncated batch");
      free(results);
      for (size_t k = 0; k < nfail; k++) mpwasm_runtime_types_task_error_free(&failures[k].f1);
      free(failures);
      worker_string_free(name);
      mpwasm_runtime_types_batch_free(inputs);
      return false;
    }
    int64_t x;
    char text[24];
    int n = 0;
    if (boom) abort();
    if (parse_i64(inputs->ptr + pos, len, &x)) {
      n = snprintf(text, sizeof text, "%" PRId64, x * x);
    } else {
      failures[nfail].f0 = i;
      set_error(&failures[nfail].f1, MPWASM_RUNTIME_TYPES_TASK_ERROR_BAD_INPUT, "not a JSON integer");
      nfail++;
    }
    uint32_t m = (uint32_t)n;
    memcpy(results + out, &m, 4);
    memcpy(results + out + 4, text, (size_t)n);
    out += 4 + (size_t)n;
    pos += len;
  }
  ret->results.ptr = results;
  ret->results.len = out;
  ret->failures.ptr = failures;
  ret->failures.len = nfail;
  worker_string_free(name);
  mpwasm_runtime_types_batch_free(inputs);
  return true;
}

int32_t exports_mpwasm_runtime_program_main(worker_list_string_t *args) {
  mpwasm_runtime_runtime_worker_info_t me;
  mpwasm_runtime_runtime_worker(&me);
  printf("hello from C main in worker %" PRIu32 ", name %.*s, %zu args\n", me.id, (int)me.name.len,
         (const char *)me.name.ptr, args->len);
  fflush(stdout);
  mpwasm_runtime_runtime_worker_info_free(&me);
  worker_list_string_free(args);
  return 0;
}
