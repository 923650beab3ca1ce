/* The optimizers, gradient clipping and learning-rate schedules against torch 1.13
 * (tests/fixtures/optim.safetensors, written by tools/make_optim_fixtures.py), the per-depth
 * decay scale, and the update speed on fine-tuning sizes.
 *
 * Tolerances: parameters after every step within 1e-6 relative (float32 throughout; torch's
 * CPU kernels may fuse a multiply-add where C does not, one rounding apart), the schedule's
 * rates within 1e-12 relative (both sides compute in double), clipped gradients 1e-6. */
#include <string.h>
#include <time.h>

#include "check.h"
#include "lr_schedule.h"
#include "optim.h"
#include "test_util.h"

#define FIXTURE HS_FIXTURES_DIR "/optim.safetensors"
#define STEPS 5
#define NPARAMS 3
#define RTOL 1e-6f

static const char *const names[NPARAMS] = {"w1", "w2", "b"};
static hs_state_dict fixture;

static const hs_sd_entry *entry(const char *fmt, const char *a, int k) {
    char key[128];
    if (k >= 0) snprintf(key, sizeof key, fmt, k, a);
    else snprintf(key, sizeof key, fmt, a);
    return test_entry(&fixture, key);
}

/* The three parameters and their gradient buffers, copied from "init.*". */
typedef struct params {
    float *value[NPARAMS], *grad[NPARAMS];
    int64_t count[NPARAMS];
} params;

static void params_init(params *p) {
    for (int i = 0; i < NPARAMS; i++) {
        const hs_sd_entry *e = entry("init.%s", names[i], -1);
        p->count[i] = e->numel;
        p->value[i] = malloc((size_t)e->numel * sizeof(float));
        p->grad[i] = calloc((size_t)e->numel, sizeof(float));
        memcpy(p->value[i], e->data, (size_t)e->numel * sizeof(float));
    }
}

static void params_free(params *p) {
    for (int i = 0; i < NPARAMS; i++) {
        free(p->value[i]);
        free(p->grad[i]);
    }
}

/* The fixture's gradients of step k, each the size of its parameter or the test stops. */
static void set_grads(params *p, int k) {
    for (int i = 0; i < NPARAMS; i++) {
        const hs_sd_entry *g = entry("grad.%d.%s", names[i], k);
        if (g->numel != p->count[i]) {
            fprintf(stderr, "fixture: grad.%d.%s has %lld values, not %lld\n", k, names[i],
                    (long long)g->numel, (long long)p->count[i]);
            exit(1);
        }
        memcpy(p->grad[i], g->data, (size_t)g->numel * sizeof(float));
    }
}

/* Registers the parameters: "w1" through the original hs_optimizer_add (scale 1, decay on),
 * the others with their scale and decay switch. */
static void register_params(hs_optimizer *opt, params *p, const float *scale,
                            const int *decay) {
    hs_error err = {0};
    CHECK(hs_optimizer_add(opt, names[0], p->value[0], p->grad[0], p->count[0], &err) == HS_OK);
    for (int i = 1; i < NPARAMS; i++)
        CHECK(hs_optimizer_add_scaled(opt, names[i], p->value[i], p->grad[i], p->count[i],
                                      scale[i], decay[i], &err) == HS_OK);
}

/* Runs STEPS steps with the fixture's gradients; schedule (may be NULL) sets the rate of every
 * step from base_lr. Compares the parameters with torch's after each step. */
static void run_case(const char *name, hs_optimizer *opt, params *p,
                     const hs_lr_schedule *schedule, float base_lr) {
    for (int k = 0; k < STEPS; k++) {
        set_grads(p, k);
        if (schedule) opt->lr = (float)(base_lr * hs_lr_factor(schedule, k, STEPS));
        hs_optimizer_step(opt);
        for (int i = 0; i < NPARAMS; i++) {
            char what[128], format[64];
            snprintf(format, sizeof format, "%s.%%d.%%s", name);
            const hs_sd_entry *want = entry(format, names[i], k);
            snprintf(what, sizeof what, "%s step %d %s", name, k + 1, names[i]);
            CHECK(want->numel == p->count[i]);
            CHECK_CLOSE(what, p->value[i], want->data, p->count[i], RTOL, 0.0f);
        }
    }
}

static void test_sgd(const char *name, float momentum, int nesterov) {
    const float scale[NPARAMS] = {1, 1, 1};
    const int decay[NPARAMS] = {1, 1, 0};
    params p;
    params_init(&p);
    hs_optimizer opt;
    hs_error err = {0};
    CHECK(hs_optimizer_init(&opt, HS_OPTIMIZER_SGD, 0.1f, momentum, 1e-2f, &err) == HS_OK);
    CHECK(hs_optimizer_set_nesterov(&opt, nesterov, &err) == HS_OK);
    register_params(&opt, &p, scale, decay);
    run_case(name, &opt, &p, NULL, 0);
    CHECK(opt.steps == STEPS);
    hs_optimizer_free(&opt);
    params_free(&p);
}

static void test_adamw(const char *name, int scheduled) {
    const float scale[NPARAMS] = {1, 0.65f, 0.65f};
    const int decay[NPARAMS] = {1, 1, 0};
    params p;
    params_init(&p);
    hs_optimizer opt;
    hs_error err = {0};
    CHECK(hs_optimizer_init(&opt, HS_OPTIMIZER_ADAMW, 1e-2f, 0, 0.05f, &err) == HS_OK);
    register_params(&opt, &p, scale, decay);
    hs_lr_schedule schedule = hs_lr_schedule_constant();
    if (scheduled) {
        /* [start_factor, warmup, total, eta_min] as the script used them. */
        const hs_sd_entry *s = test_entry(&fixture, "adamw_scheduled.params");
        CHECK(s->numel == 4 && s->data[2] == STEPS && s->data[3] == 0.0f);
        schedule = (hs_lr_schedule){HS_LR_COSINE, (int64_t)s->data[1], 0.1, 0.0};
        CHECK(fabsf(s->data[0] - 0.1f) == 0.0f);
        CHECK(hs_lr_schedule_check(&schedule, STEPS, &err) == HS_OK);
    }
    run_case(name, &opt, &p, scheduled ? &schedule : NULL, 1e-2f);
    hs_optimizer_free(&opt);
    params_free(&p);
}

/* What --resume relies on: the state checkpoint.c saves (m, v, the step count) and the rate
 * from the step count alone continue a run bit for bit. */
static void test_resume_continues(void) {
    const float scale[NPARAMS] = {1, 0.65f, 0.65f};
    const int decay[NPARAMS] = {1, 1, 0};
    const hs_lr_schedule schedule = {HS_LR_COSINE, 2, 0.1, 0.01};
    enum { BEFORE = 2 };
    params whole, split;
    params_init(&whole);
    params_init(&split);
    hs_optimizer a, b, c;
    hs_error err = {0};
    CHECK(hs_optimizer_init(&a, HS_OPTIMIZER_ADAMW, 1e-2f, 0, 0.05f, &err) == HS_OK);
    CHECK(hs_optimizer_init(&b, HS_OPTIMIZER_ADAMW, 1e-2f, 0, 0.05f, &err) == HS_OK);
    CHECK(hs_optimizer_init(&c, HS_OPTIMIZER_ADAMW, 1e-2f, 0, 0.05f, &err) == HS_OK);
    register_params(&a, &whole, scale, decay);
    register_params(&b, &split, scale, decay);
    register_params(&c, &split, scale, decay);
    for (int k = 0; k < STEPS; k++) {
        hs_optimizer *run = k < BEFORE ? &b : &c;
        if (k == BEFORE) { /* "resume": c takes b's state */
            for (int i = 0; i < NPARAMS; i++) {
                memcpy(c.params[i].m, b.params[i].m, (size_t)split.count[i] * sizeof(float));
                memcpy(c.params[i].v, b.params[i].v, (size_t)split.count[i] * sizeof(float));
            }
            c.steps = b.steps;
        }
        set_grads(&whole, k);
        set_grads(&split, k);
        a.lr = (float)(1e-2 * hs_lr_factor(&schedule, a.steps, STEPS));
        run->lr = (float)(1e-2 * hs_lr_factor(&schedule, run->steps, STEPS));
        hs_optimizer_step(&a);
        hs_optimizer_step(run);
    }
    for (int i = 0; i < NPARAMS; i++) {
        size_t bytes = (size_t)whole.count[i] * sizeof(float);
        CHECK_MSG(memcmp(whole.value[i], split.value[i], bytes) == 0, "resumed %s differs",
                  names[i]);
    }
    hs_optimizer_free(&a);
    hs_optimizer_free(&b);
    hs_optimizer_free(&c);
    params_free(&whole);
    params_free(&split);
}

static void test_clip(const char *name) {
    params p;
    params_init(&p);
    hs_optimizer opt;
    hs_error err = {0};
    CHECK(hs_optimizer_init(&opt, HS_OPTIMIZER_SGD, 0.1f, 0, 0, &err) == HS_OK);
    set_grads(&p, 0);
    for (int i = 0; i < NPARAMS; i++)
        CHECK(hs_optimizer_add(&opt, names[i], p.value[i], p.grad[i], p.count[i], &err) ==
              HS_OK);
    char key[128];
    snprintf(key, sizeof key, "clip.%s.max_norm", name);
    double max_norm = test_entry(&fixture, key)->data[0];
    snprintf(key, sizeof key, "clip.%s.norm", name);
    float want_norm = test_entry(&fixture, key)->data[0];
    float norm = (float)hs_optimizer_clip_grad_norm(&opt, max_norm);
    CHECK_CLOSE(name, &norm, &want_norm, 1, RTOL, 0.0f);
    for (int i = 0; i < NPARAMS; i++) {
        char format[64], what[128];
        snprintf(format, sizeof format, "clip.%s.grad.%%s", name);
        snprintf(what, sizeof what, "clipped %s of %s", names[i], name);
        CHECK_CLOSE(what, p.grad[i], entry(format, names[i], -1)->data, p.count[i], RTOL, 0);
    }
    hs_optimizer_free(&opt);
    params_free(&p);
}

static void test_clip_non_finite(void) {
    float value[3] = {0}, grad[3] = {1.0f, INFINITY, 2.0f};
    hs_optimizer opt;
    hs_error err = {0};
    CHECK(hs_optimizer_init(&opt, HS_OPTIMIZER_SGD, 0.1f, 0, 0, &err) == HS_OK);
    CHECK(hs_optimizer_add(&opt, "x", value, grad, 3, &err) == HS_OK);
    CHECK(isinf(hs_optimizer_clip_grad_norm(&opt, 1.0)));
    CHECK(grad[0] == 1.0f && grad[2] == 2.0f); /* left for the caller to report */
    hs_optimizer_free(&opt);
}

static double fixture_value(const char *name, const char *part, int index) {
    char hi[96], lo[96];
    snprintf(hi, sizeof hi, "sched.%s.%s_hi", name, part);
    snprintf(lo, sizeof lo, "sched.%s.%s_lo", name, part);
    return (double)test_entry(&fixture, hi)->data[index] +
           (double)test_entry(&fixture, lo)->data[index];
}

static void test_schedule(const char *name, hs_lr_shape shape) {
    double base = fixture_value(name, "params", 0), eta_min = fixture_value(name, "params", 4);
    int64_t warmup = (int64_t)fixture_value(name, "params", 2);
    int64_t total = (int64_t)fixture_value(name, "params", 3);
    hs_lr_schedule s = {shape, warmup, fixture_value(name, "params", 1), eta_min / base};
    hs_error err = {0};
    CHECK(hs_lr_schedule_check(&s, total, &err) == HS_OK);
    char key[96];
    snprintf(key, sizeof key, "sched.%s.lr_hi", name);
    CHECK(test_entry(&fixture, key)->numel == total);
    int bad = 0;
    for (int64_t t = 0; t < total; t++) {
        double want = fixture_value(name, "lr", (int)t);
        double got = base * hs_lr_factor(&s, t, total);
        if (!(fabs(got - want) <= 1e-12 * fabs(want))) {
            if (!bad++)
                fprintf(stderr, "schedule %s step %lld: %.17g, torch %.17g\n", name,
                        (long long)t, got, want);
        }
    }
    CHECK_MSG(bad == 0, "schedule %s: %d of %lld rates differ", name, bad, (long long)total);
    /* Past the end the rate stays where the run ended, not torch's climb back up. */
    if (shape == HS_LR_COSINE)
        CHECK(hs_lr_factor(&s, total + 3, total) == s.floor);
    else
        CHECK(hs_lr_factor(&s, total + 3, total) == 1.0);
}

static void test_schedule_settings(void) {
    hs_error err = {0};
    hs_lr_schedule s = hs_lr_schedule_constant();
    CHECK(hs_lr_schedule_check(&s, 10, &err) == HS_OK);
    CHECK(hs_lr_factor(&s, 0, 10) == 1.0 && hs_lr_factor(&s, 9, 10) == 1.0);
    CHECK(hs_lr_schedule_check(&s, 0, &err) == HS_ERR_ARGUMENT);
    s = (hs_lr_schedule){HS_LR_COSINE, 11, 0.1, 0.0};
    CHECK(hs_lr_schedule_check(&s, 10, &err) == HS_ERR_ARGUMENT);
    s = (hs_lr_schedule){HS_LR_COSINE, 2, 0.0, 0.0};
    CHECK(hs_lr_schedule_check(&s, 10, &err) == HS_ERR_ARGUMENT);
    s = (hs_lr_schedule){HS_LR_COSINE, 2, 0.5, 1.5};
    CHECK(hs_lr_schedule_check(&s, 10, &err) == HS_ERR_ARGUMENT);
    s = (hs_lr_schedule){HS_LR_COSINE, -1, 0.5, 0.0};
    CHECK(hs_lr_schedule_check(&s, 10, &err) == HS_ERR_ARGUMENT);
    /* A warmup as long as the run: never decays. */
    s = (hs_lr_schedule){HS_LR_COSINE, 4, 0.5, 0.0};
    CHECK(hs_lr_schedule_check(&s, 4, &err) == HS_OK);
    CHECK(hs_lr_factor(&s, 0, 4) == 0.5 && hs_lr_factor(&s, 2, 4) == 0.75);
    hs_lr_shape shape = HS_LR_CONSTANT;
    CHECK(hs_lr_shape_parse("cosine", &shape, &err) == HS_OK && shape == HS_LR_COSINE);
    CHECK(strcmp(hs_lr_shape_name(shape), "cosine") == 0);
    CHECK(hs_lr_shape_parse("linear", &shape, &err) == HS_ERR_ARGUMENT);
    CHECK(strstr(err.message, "linear") != NULL);
}

static void test_layer_decay(void) {
    CHECK(hs_layer_decay_scale(0.65, 12, 12) == 1.0f);          /* the head */
    CHECK(hs_layer_decay_scale(0.65, 11, 12) == 0.65f);         /* the top block */
    CHECK(hs_layer_decay_scale(0.65, 10, 12) == (float)(0.65 * 0.65));
    CHECK(hs_layer_decay_scale(0.5, 0, 6) == 1.0f / 64);         /* the stem: decay^D */
    CHECK(hs_layer_decay_scale(0.5, -3, 6) == 1.0f / 64);        /* clamped */
    CHECK(hs_layer_decay_scale(0.5, 9, 6) == 1.0f);
    CHECK(hs_layer_decay_scale(1.0, 2, 6) == 1.0f);              /* no decay */
}

static void test_weight_decay_rule(void) {
    CHECK(hs_param_uses_weight_decay("features.3.0.weight", 4) == 1);  /* a convolution */
    CHECK(hs_param_uses_weight_decay("classifier.1.weight", 2) == 1);  /* a linear layer */
    CHECK(hs_param_uses_weight_decay("classifier.1.bias", 1) == 0);
    CHECK(hs_param_uses_weight_decay("features.1.1.weight", 1) == 0);  /* a norm's scale */
    CHECK(hs_param_uses_weight_decay("odd.bias", 2) == 0);             /* by name */
    CHECK(hs_param_uses_weight_decay("bias", 2) == 1);                 /* no ".bias" suffix */
    CHECK(hs_param_uses_weight_decay("scalar", 0) == 0);
}

static void test_argument_errors(void) {
    hs_optimizer opt;
    hs_error err = {0};
    CHECK(hs_optimizer_init(&opt, HS_OPTIMIZER_SGD, 0.0f, 0.9f, 0, &err) == HS_ERR_ARGUMENT);
    CHECK(hs_optimizer_init(&opt, HS_OPTIMIZER_SGD, 0.1f, 0.0f, 0, &err) == HS_OK);
    CHECK(hs_optimizer_set_nesterov(&opt, 1, &err) == HS_ERR_ARGUMENT); /* no momentum */
    float value[2] = {0}, grad[2] = {0};
    CHECK(hs_optimizer_add_scaled(&opt, "x", value, grad, 2, 0.0f, 1, &err) == HS_ERR_ARGUMENT);
    CHECK(strstr(err.message, "scale of x") != NULL);
    CHECK(hs_optimizer_add_scaled(&opt, "x", value, grad, 2, NAN, 1, &err) == HS_ERR_ARGUMENT);
    CHECK(hs_optimizer_add(&opt, "x", value, grad, 0, &err) == HS_ERR_INTERNAL);
    CHECK(opt.count == 0);
    hs_optimizer_free(&opt);
    CHECK(hs_optimizer_init(&opt, HS_OPTIMIZER_ADAMW, 0.1f, 0.9f, 0, &err) == HS_OK);
    CHECK(hs_optimizer_set_nesterov(&opt, 1, &err) == HS_ERR_ARGUMENT); /* not SGD */
    hs_optimizer_free(&opt);
}

/* Large tensors are updated by several threads: the result must be the same, bit for bit, as
 * the same values in pieces small enough for one thread. */
static void test_parallel_matches_serial(hs_optimizer_kind kind) {
    enum { N = 200000, PIECE = 1000 };
    float *big = test_deterministic_input(N), *small = test_deterministic_input(N);
    float *grad = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) grad[i] = (float)cos(0.11 * i);
    hs_optimizer a, b;
    hs_error err = {0};
    CHECK(hs_optimizer_init(&a, kind, 1e-2f, 0.9f, 0.05f, &err) == HS_OK);
    CHECK(hs_optimizer_init(&b, kind, 1e-2f, 0.9f, 0.05f, &err) == HS_OK);
    CHECK(hs_optimizer_add_scaled(&a, "big", big, grad, N, 0.5f, 1, &err) == HS_OK);
    for (int i = 0; i < N; i += PIECE)
        CHECK(hs_optimizer_add_scaled(&b, "piece", small + i, grad + i, PIECE, 0.5f, 1, &err) ==
              HS_OK);
    for (int s = 0; s < 3; s++) {
        hs_optimizer_step(&a);
        hs_optimizer_step(&b);
    }
    CHECK_MSG(memcmp(big, small, N * sizeof(float)) == 0, "%s: threads change the result",
              hs_optimizer_name(kind));
    double norm_a = hs_optimizer_clip_grad_norm(&a, 1e9);
    double norm_b = hs_optimizer_clip_grad_norm(&b, 1e9);
    CHECK(fabs(norm_a - norm_b) <= 1e-9 * norm_b);
    hs_optimizer_zero_grad(&a); /* also split over the threads */
    int nonzero = 0;
    for (int i = 0; i < N; i++) nonzero += grad[i] != 0.0f;
    CHECK_MSG(nonzero == 0, "%d gradients left after zero_grad", nonzero);
    hs_optimizer_free(&a);
    hs_optimizer_free(&b);
    free(big);
    free(small);
    free(grad);
}

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Update time on fine-tuning sizes (informational; the checks are that the values stay
 * finite). 4.6 M floats: EfficientNet-Lite0; 138 M: VGG16, only with HS_OPTIM_BENCH_LARGE=1
 * (2.2 GB of parameters, gradients and AdamW state). */
static void time_update(hs_optimizer_kind kind, int64_t count, int steps) {
    float *value = malloc((size_t)count * sizeof(float));
    float *grad = malloc((size_t)count * sizeof(float));
    if (!value || !grad) {
        printf("timing %s %lld floats: not enough memory, skipped\n", hs_optimizer_name(kind),
               (long long)count);
        free(value);
        free(grad);
        return;
    }
    for (int64_t i = 0; i < count; i++) {
        value[i] = (float)(i % 1000) * 1e-3f;
        grad[i] = (float)(i % 777) * 1e-3f - 0.3f;
    }
    hs_optimizer opt;
    hs_error err = {0};
    CHECK(hs_optimizer_init(&opt, kind, 1e-3f, 0.9f, 0.05f, &err) == HS_OK);
    CHECK(hs_optimizer_add(&opt, "all", value, grad, count, &err) == HS_OK);
    hs_optimizer_step(&opt); /* touches the state's pages once */
    double start = seconds_now();
    for (int s = 0; s < steps; s++) hs_optimizer_step(&opt);
    double per_step = (seconds_now() - start) / steps;
    printf("timing %s update of %.1f M floats: %.2f ms per step (%.2f GB/s)\n",
           hs_optimizer_name(kind), (double)count / 1e6, per_step * 1e3,
           (double)count * (kind == HS_OPTIMIZER_ADAMW ? 28 : 20) / per_step / 1e9);
    CHECK(isfinite(value[0]) && isfinite(value[count - 1]));
    hs_optimizer_free(&opt);
    free(value);
    free(grad);
}

int main(void) {
    if (!test_file_exists(FIXTURE)) {
        fprintf(stderr, "missing %s: run tools/make_optim_fixtures.py\n", FIXTURE);
        return 1;
    }
    test_load_fixture(FIXTURE, &fixture);
    test_sgd("sgd_momentum", 0.9f, 0);
    test_sgd("sgd_nesterov", 0.9f, 1);
    test_sgd("sgd_plain", 0.0f, 0);
    test_adamw("adamw_groups", 0);
    test_adamw("adamw_scheduled", 1);
    test_resume_continues();
    test_clip("clipped");
    test_clip("unclipped");
    test_clip_non_finite();
    test_schedule("cosine", HS_LR_COSINE);
    test_schedule("cosine_nofloor", HS_LR_COSINE);
    test_schedule("cosine_nowarmup", HS_LR_COSINE);
    test_schedule("warmup_only", HS_LR_CONSTANT);
    test_schedule_settings();
    test_layer_decay();
    test_weight_decay_rule();
    test_argument_errors();
    test_parallel_matches_serial(HS_OPTIMIZER_SGD);
    test_parallel_matches_serial(HS_OPTIMIZER_ADAMW);
    time_update(HS_OPTIMIZER_ADAMW, 4600000, 5);
    time_update(HS_OPTIMIZER_SGD, 4600000, 5);
    const char *large = getenv("HS_OPTIM_BENCH_LARGE");
    if (large && strcmp(large, "1") == 0) {
        time_update(HS_OPTIMIZER_ADAMW, 138000000, 3);
        time_update(HS_OPTIMIZER_SGD, 138000000, 3);
    }
    hs_sd_free(&fixture);
    return check_finish("test_optim");
}
