/*
 * _ferry.c - the C extension under `import ferry`: thin types over the
 * public API (include/ferry.h, nothing else), so that Python costs one
 * attribute lookup and one call more than C.
 *
 *   Engine(src, device, workers, max_batch, depth, precision, graphs)
 *   Batcher(engine, max_batch, max_delay_us, max_queue)
 *   Pool(shape, dtype, device, size)
 *
 * Arrays cross as buffers (PEP 3118): a C-contiguous input of the model's
 * dtype is read in place; anything else goes through
 * numpy.ascontiguousarray once. Outputs are fresh numpy arrays that Ferry
 * writes directly. Every call that can wait (run, submit, infer, acquire,
 * destroy) releases the GIL; errors raise ferry.Error subclasses with
 * ferry_last_error()'s message.
 *
 * Lifetimes: an Engine's ferry_engine is destroyed (GIL released, so that
 * completion callbacks can finish their futures) when the Python object
 * goes; a request in flight holds its arrays and its future, not the
 * engine. Should the last reference go inside a completion callback (an
 * engine thread, which destroy would join), the destroy moves to a thread
 * of its own. A Batcher holds a reference to its Engine.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ferry.h"

/* ------------------------------------------------------------ errors */

static PyObject *err_base;                     /* ferry.Error */
static PyObject *err_cls[FERRY_EINTERNAL + 1]; /* per status */
static PyObject *np_empty, *np_ascontig;       /* numpy.empty, numpy.ascontiguousarray */
static PyObject *s_set_result, *s_set_exception;

static PyObject *status_exception(ferry_status st, const char *msg)
{
    PyObject *cls = (st > 0 && st <= FERRY_EINTERNAL && err_cls[st]) ? err_cls[st] : err_base;
    return PyObject_CallFunction(cls, "s", msg && *msg ? msg : ferry_status_str(st));
}

/* Raises the Python exception for st with this thread's Ferry message. */
static PyObject *raise_status(ferry_status st)
{
    PyObject *cls = (st > 0 && st <= FERRY_EINTERNAL && err_cls[st]) ? err_cls[st] : err_base;
    const char *msg = ferry_last_error();
    PyErr_SetString(cls, msg && *msg ? msg : ferry_status_str(st));
    return NULL;
}

static int make_errors(PyObject *mod)
{
    static const struct {
        ferry_status st;
        const char *name;
        PyObject **extra;
    } tab[] = {
        {FERRY_EINVAL, "InvalidArgumentError", &PyExc_ValueError},
        {FERRY_ENOMEM, "OutOfMemoryError", &PyExc_MemoryError},
        {FERRY_EIO, "FileError", &PyExc_OSError},
        {FERRY_EPARSE, "ParseError", &PyExc_ValueError},
        {FERRY_EUNSUPPORTED, "UnsupportedError", &PyExc_NotImplementedError},
        {FERRY_ESHAPE, "ShapeError", &PyExc_ValueError},
        {FERRY_EDTYPE, "DTypeError", &PyExc_TypeError},
        {FERRY_ETIMEDOUT, "TimeoutError", &PyExc_TimeoutError},
        {FERRY_EBUSY, "BusyError", NULL},
        {FERRY_ESHUTDOWN, "ShutdownError", NULL},
        {FERRY_EDEVICE, "DeviceError", NULL},
        {FERRY_ENOTFOUND, "NotFoundError", &PyExc_LookupError},
        {FERRY_EINTERNAL, "InternalError", NULL},
    };
    err_base = PyErr_NewExceptionWithDoc("ferry.Error",
                                         "Base of Ferry's errors; .status names the "
                                         "ferry_status.",
                                         PyExc_Exception, NULL);
    if (!err_base || PyModule_AddObjectRef(mod, "Error", err_base) < 0)
        return -1;
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        char full[64];
        snprintf(full, sizeof full, "ferry.%s", tab[i].name);
        PyObject *bases =
            tab[i].extra ? PyTuple_Pack(2, err_base, *tab[i].extra) : PyTuple_Pack(1, err_base);
        PyObject *dict = Py_BuildValue("{s:s}", "status", ferry_status_str(tab[i].st));
        if (!bases || !dict)
            return -1;
        PyObject *cls = PyErr_NewException(full, bases, dict);
        Py_DECREF(bases);
        Py_DECREF(dict);
        if (!cls || PyModule_AddObjectRef(mod, tab[i].name, cls) < 0)
            return -1;
        err_cls[tab[i].st] = cls;
    }
    return 0;
}

/* ------------------------------------------------------------ dtypes */

static const char *np_name(ferry_dtype dt)
{
    switch (dt) {
    case FERRY_F32: return "float32";
    case FERRY_F16: return "float16";
    case FERRY_F64: return "float64";
    case FERRY_I64: return "int64";
    case FERRY_I32: return "int32";
    case FERRY_I8: return "int8";
    case FERRY_U8: return "uint8";
    case FERRY_BOOL: return "bool";
    default: return NULL;
    }
}

/* Does a PEP 3118 format string describe dt? ("<f", "=f", "f"; numpy says
 * "l" for int64 on LP64.) */
static int format_is(const char *fmt, Py_ssize_t itemsize, ferry_dtype dt)
{
    if (!fmt)
        fmt = "B";
    if (*fmt == '<' || *fmt == '=' || *fmt == '@')
        fmt++;
    if (fmt[0] == '\0' || fmt[1] != '\0' || (size_t)itemsize != ferry_dtype_size(dt))
        return 0;
    switch (dt) {
    case FERRY_F32:
    case FERRY_F64: return *fmt == 'f' || *fmt == 'd';
    case FERRY_F16: return *fmt == 'e';
    case FERRY_I64:
    case FERRY_I32: return *fmt == 'q' || *fmt == 'l' || *fmt == 'i';
    case FERRY_I8: return *fmt == 'b';
    case FERRY_U8: return *fmt == 'B';
    case FERRY_BOOL: return *fmt == '?';
    default: return 0;
    }
}

/* An input as a buffer of dtype dt, C-contiguous: in place when x already
 * is one, else converted once by numpy (into *keep, which owns it). */
static int get_input(PyObject *x, ferry_dtype dt, Py_buffer *view, PyObject **keep)
{
    *keep = NULL;
    if (PyObject_CheckBuffer(x) &&
        PyObject_GetBuffer(x, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) == 0) {
        if (format_is(view->format, view->itemsize, dt))
            return 0;
        PyBuffer_Release(view);
    }
    PyErr_Clear();
    const char *name = np_name(dt);
    if (!name) {
        PyErr_Format(PyExc_TypeError, "ferry: inputs of dtype %s cannot come from Python",
                     ferry_dtype_name(dt));
        return -1;
    }
    *keep = PyObject_CallFunction(np_ascontig, "Os", x, name);
    if (!*keep)
        return -1;
    if (PyObject_GetBuffer(*keep, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        Py_CLEAR(*keep);
        return -1;
    }
    return 0;
}

static void put_input(Py_buffer *view, PyObject *keep)
{
    PyBuffer_Release(view);
    Py_XDECREF(keep);
}

/* A fresh numpy array of shape[ndim] and dtype dt, with its buffer. */
static PyObject *new_output(const int64_t *shape, int ndim, ferry_dtype dt, Py_buffer *view)
{
    const char *name = np_name(dt);
    if (!name) {
        PyErr_Format(PyExc_TypeError, "ferry: outputs of dtype %s cannot go to numpy",
                     ferry_dtype_name(dt));
        return NULL;
    }
    PyObject *shp = PyTuple_New(ndim);
    if (!shp)
        return NULL;
    for (int d = 0; d < ndim; d++)
        PyTuple_SET_ITEM(shp, d, PyLong_FromLongLong(shape[d]));
    PyObject *arr = PyObject_CallFunction(np_empty, "Os", shp, name);
    Py_DECREF(shp);
    if (!arr)
        return NULL;
    if (PyObject_GetBuffer(arr, view, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) {
        Py_DECREF(arr);
        return NULL;
    }
    return arr;
}

static PyObject *shape_tuple(const int64_t *shape, int ndim)
{
    PyObject *t = PyTuple_New(ndim);
    if (!t)
        return NULL;
    for (int d = 0; d < ndim; d++) {
        PyObject *v = shape[d] == FERRY_DIM_BATCH ? PyUnicode_FromString("N")
                      : shape[d] < 0 ? PyUnicode_FromFormat("%lldN", -(long long)shape[d])
                                     : PyLong_FromLongLong(shape[d]);
        if (!v) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, d, v);
    }
    return t;
}

/* ------------------------------------------------------------ engine */

#define MAX_IO 16

typedef struct {
    PyObject_HEAD ferry_model *m;
    ferry_engine *e;
    int n_in, n_out;
    ferry_tensor_info in[MAX_IO], out[MAX_IO];
    ferry_dtype in_dt[MAX_IO]; /* what callers pass (the engine's io dtype for floats) */
    int max_batch;
} EngineObject;

static _Thread_local int in_callback; /* this thread is running a completion callback */

static int is_float(ferry_dtype dt)
{
    return dt == FERRY_F32 || dt == FERRY_F16 || dt == FERRY_BF16 || dt == FERRY_F64;
}

static ferry_status parse_precision(const char *p, ferry_precision *out)
{
    static const char *names[] = {"fp32", "tf32", "fp16", "bf16"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(p, names[i])) {
            *out = (ferry_precision)i;
            return FERRY_OK;
        }
    return FERRY_EINVAL;
}

static int Engine_init(EngineObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"model",          "device",    "workers", "max_batch",
                             "pipeline_depth", "precision", "graphs",  NULL};
    PyObject *src;
    const char *device = "cpu", *precision = "fp32";
    int workers = 0, max_batch = 256, depth = 2, graphs = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|siiisp", kwlist, &src, &device, &workers,
                                     &max_batch, &depth, &precision, &graphs))
        return -1;
    if (self->e)
        return 0;
    ferry_engine_config cfg;
    ferry_engine_config_init(&cfg);
    cfg.device = device;
    cfg.workers = workers;
    cfg.max_batch = max_batch;
    cfg.pipeline_depth = depth;
    cfg.graphs = graphs;
    if (parse_precision(precision, &cfg.precision) != FERRY_OK) {
        PyErr_Format(err_cls[FERRY_EINVAL], "precision '%s': expected fp32, tf32, fp16 or bf16",
                     precision);
        return -1;
    }
    ferry_status st;
    if (PyBytes_Check(src) || PyByteArray_Check(src) || PyMemoryView_Check(src)) {
        Py_buffer b;
        if (PyObject_GetBuffer(src, &b, PyBUF_SIMPLE) < 0)
            return -1;
        Py_BEGIN_ALLOW_THREADS
            st = ferry_model_load_buffer(b.buf, (size_t)b.len, NULL, &self->m);
        Py_END_ALLOW_THREADS
        PyBuffer_Release(&b);
    } else {
        PyObject *path = NULL;
        if (!PyUnicode_FSConverter(src, &path))
            return -1;
        const char *p = PyBytes_AS_STRING(path);
        Py_BEGIN_ALLOW_THREADS
            st = ferry_model_load(p, &self->m);
        Py_END_ALLOW_THREADS
        Py_DECREF(path);
    }
    if (st != FERRY_OK) {
        raise_status(st);
        return -1;
    }
    self->n_in = ferry_model_num_inputs(self->m);
    self->n_out = ferry_model_num_outputs(self->m);
    if (self->n_in > MAX_IO || self->n_out > MAX_IO) {
        PyErr_Format(err_cls[FERRY_EUNSUPPORTED],
                     "the model has %d inputs and %d outputs; Python takes at most %d each",
                     self->n_in, self->n_out, MAX_IO);
        return -1;
    }
    for (int i = 0; i < self->n_in; i++) {
        ferry_model_input(self->m, i, &self->in[i]);
        self->in_dt[i] = is_float(self->in[i].dtype) ? FERRY_F32 : self->in[i].dtype;
    }
    for (int i = 0; i < self->n_out; i++)
        ferry_model_output(self->m, i, &self->out[i]);
    Py_BEGIN_ALLOW_THREADS
        st = ferry_engine_create(self->m, &cfg, &self->e);
    Py_END_ALLOW_THREADS
    if (st != FERRY_OK) {
        raise_status(st);
        return -1;
    }
    self->max_batch = max_batch;
    return 0;
}

typedef struct {
    ferry_engine *e;
    ferry_model *m;
} doomed;

static void *destroy_thread(void *arg)
{
    doomed *d = arg;
    ferry_engine_destroy(d->e);
    ferry_model_destroy(d->m);
    PyMem_RawFree(d);
    return NULL;
}

static void destroy_engine(ferry_engine *e, ferry_model *m)
{
    if (in_callback) {
        /* on an engine thread: destroy would join this very thread */
        doomed *d = PyMem_RawMalloc(sizeof *d);
        pthread_t t;
        pthread_attr_t a;
        if (d) {
            d->e = e;
            d->m = m;
            pthread_attr_init(&a);
            pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
            int rc = pthread_create(&t, &a, destroy_thread, d);
            pthread_attr_destroy(&a);
            if (rc == 0)
                return;
            PyMem_RawFree(d);
        }
        return; /* cannot destroy it safely here: leak rather than deadlock */
    }
    Py_BEGIN_ALLOW_THREADS
        ferry_engine_destroy(e);
        ferry_model_destroy(m);
    Py_END_ALLOW_THREADS
}

static void Engine_dealloc(EngineObject *self)
{
    if (self->e || self->m)
        destroy_engine(self->e, self->m);
    self->e = NULL;
    self->m = NULL;
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int engine_ready(EngineObject *self)
{
    if (!self->e) {
        PyErr_SetString(err_cls[FERRY_EINVAL], "ferry: engine is not initialized");
        return 0;
    }
    return 1;
}

/* One batch's tensors: inputs read from Python objects, fresh outputs. */
typedef struct {
    int n_in, n_out;
    ferry_tensor in[MAX_IO], out[MAX_IO];
    Py_buffer in_view[MAX_IO], out_view[MAX_IO];
    PyObject *keep[MAX_IO];
    PyObject *arrays[MAX_IO]; /* the outputs */
    int single;               /* inputs came without their batch dim: outputs drop it */
} batch_io;

static void batch_release(batch_io *b, int drop_outputs)
{
    for (int i = 0; i < b->n_in; i++)
        put_input(&b->in_view[i], b->keep[i]);
    for (int i = 0; i < b->n_out; i++) {
        PyBuffer_Release(&b->out_view[i]);
        if (drop_outputs)
            Py_CLEAR(b->arrays[i]);
    }
    b->n_in = b->n_out = 0;
}

/* Fills b from xs (one array, or a tuple/list of n_in arrays). */
static int batch_prepare(EngineObject *self, PyObject *xs, batch_io *b)
{
    memset(b, 0, sizeof *b);
    PyObject *items[MAX_IO];
    if (self->n_in == 1 && !PyTuple_Check(xs)) {
        items[0] = xs;
    } else {
        PyObject *seq = PySequence_Fast(xs, "ferry: inputs must be an array or a tuple of arrays");
        if (!seq)
            return -1;
        if (PySequence_Fast_GET_SIZE(seq) != self->n_in) {
            PyErr_Format(err_cls[FERRY_EINVAL], "ferry: the model takes %d inputs, got %zd",
                         self->n_in, PySequence_Fast_GET_SIZE(seq));
            Py_DECREF(seq);
            return -1;
        }
        for (int i = 0; i < self->n_in; i++)
            items[i] = PySequence_Fast_GET_ITEM(seq, i);
        Py_DECREF(seq); /* the items are owned by xs, which outlives b */
    }
    int64_t n = -1;
    for (int i = 0; i < self->n_in; i++) {
        if (get_input(items[i], self->in_dt[i], &b->in_view[i], &b->keep[i]) < 0) {
            batch_release(b, 1);
            return -1;
        }
        b->n_in = i + 1;
        ferry_tensor *t = &b->in[i];
        t->dtype = self->in_dt[i];
        t->data = b->in_view[i].buf;
        int nd = b->in_view[i].ndim;
        int single = nd == self->in[i].ndim - 1;
        if (i == 0)
            b->single = single;
        if (nd > FERRY_MAX_DIMS || single != b->single) {
            PyErr_Format(err_cls[FERRY_ESHAPE], "ferry: input '%s' has %d dimensions, expected %d",
                         self->in[i].name, nd, self->in[i].ndim);
            batch_release(b, 1);
            return -1;
        }
        t->ndim = self->in[i].ndim;
        if (single) {
            t->shape[0] = 1;
            for (int d = 0; d < nd; d++)
                t->shape[d + 1] = b->in_view[i].shape[d];
        } else {
            for (int d = 0; d < nd; d++)
                t->shape[d] = b->in_view[i].shape[d];
            t->ndim = nd;
        }
        if (n < 0)
            n = t->shape[0];
    }
    for (int i = 0; i < self->n_out; i++) {
        ferry_tensor *t = &b->out[i];
        ferry_status st = ferry_engine_output_info(self->e, i, n < 0 ? 0 : n, t);
        if (st != FERRY_OK) {
            batch_release(b, 1);
            raise_status(st);
            return -1;
        }
        b->arrays[i] = b->single ? new_output(t->shape + 1, t->ndim - 1, t->dtype, &b->out_view[i])
                                 : new_output(t->shape, t->ndim, t->dtype, &b->out_view[i]);
        if (!b->arrays[i]) {
            batch_release(b, 1);
            return -1;
        }
        b->n_out = i + 1;
        t->data = b->out_view[i].buf;
    }
    return 0;
}

/* The outputs as Python returns them: one array, or a tuple. Steals. */
static PyObject *batch_result(EngineObject *self, batch_io *b)
{
    if (self->n_out == 1) {
        PyObject *r = b->arrays[0];
        b->arrays[0] = NULL;
        return r;
    }
    PyObject *t = PyTuple_New(self->n_out);
    if (!t)
        return NULL;
    for (int i = 0; i < self->n_out; i++) {
        PyTuple_SET_ITEM(t, i, b->arrays[i]);
        b->arrays[i] = NULL;
    }
    return t;
}

static PyObject *Engine_call(EngineObject *self, PyObject *args, PyObject *kw)
{
    if (!engine_ready(self))
        return NULL;
    if (kw && PyDict_GET_SIZE(kw)) {
        PyErr_SetString(PyExc_TypeError, "ferry.Engine: inputs are positional");
        return NULL;
    }
    PyObject *xs = PyTuple_GET_SIZE(args) == 1 ? PyTuple_GET_ITEM(args, 0) : args;
    batch_io b;
    if (batch_prepare(self, xs, &b) < 0)
        return NULL;
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
        st = ferry_engine_run(self->e, b.in, b.n_in, b.out, b.n_out);
    Py_END_ALLOW_THREADS
    if (st != FERRY_OK) {
        batch_release(&b, 1);
        return raise_status(st);
    }
    batch_release(&b, 0);
    return batch_result(self, &b);
}

/* run(batches): a list in, a list out, every batch in flight at once. */
static PyObject *Engine_run(EngineObject *self, PyObject *arg)
{
    if (!engine_ready(self))
        return NULL;
    PyObject *seq = PySequence_Fast(arg, "ferry.Engine.run: expected a list of batches");
    if (!seq)
        return NULL;
    Py_ssize_t nb = PySequence_Fast_GET_SIZE(seq);
    batch_io *bs = PyMem_Calloc((size_t)(nb ? nb : 1), sizeof *bs);
    ferry_tensor *in = PyMem_Calloc((size_t)(nb ? nb : 1) * (size_t)self->n_in, sizeof *in);
    ferry_tensor *out = PyMem_Calloc((size_t)(nb ? nb : 1) * (size_t)self->n_out, sizeof *out);
    PyObject *res = NULL;
    Py_ssize_t ready = 0;
    if (!bs || !in || !out) {
        PyErr_NoMemory();
        goto done;
    }
    for (; ready < nb; ready++) {
        if (batch_prepare(self, PySequence_Fast_GET_ITEM(seq, ready), &bs[ready]) < 0)
            goto done;
        memcpy(in + ready * self->n_in, bs[ready].in, sizeof *in * (size_t)self->n_in);
        memcpy(out + ready * self->n_out, bs[ready].out, sizeof *out * (size_t)self->n_out);
    }
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
        st = ferry_engine_run_many(self->e, (int)nb, in, self->n_in, out, self->n_out);
    Py_END_ALLOW_THREADS
    if (st != FERRY_OK) {
        raise_status(st);
        goto done;
    }
    res = PyList_New(nb);
    for (Py_ssize_t k = 0; res && k < nb; k++) {
        batch_release(&bs[k], 0);
        PyList_SET_ITEM(res, k, batch_result(self, &bs[k]));
    }
done:
    for (Py_ssize_t k = 0; bs && k < ready; k++) {
        batch_release(&bs[k], 1);
        for (int i = 0; i < self->n_out; i++)
            Py_CLEAR(bs[k].arrays[i]);
    }
    PyMem_Free(bs);
    PyMem_Free(in);
    PyMem_Free(out);
    Py_DECREF(seq);
    return res;
}

/* submit(x, future): the future gets the result (or the exception) from
 * an engine thread. */
typedef struct {
    EngineObject *owner; /* borrowed: only for n_out; the engine outlives its requests */
    int n_out;
    batch_io b;
    PyObject *future;
} submit_req;

static void submit_done(void *user, ferry_status st)
{
    submit_req *r = user;
    char msg[1024] = "";
    if (st != FERRY_OK)
        snprintf(msg, sizeof msg, "%s", ferry_last_error());
    PyGILState_STATE g = PyGILState_Ensure();
    in_callback++;
    batch_release(&r->b, st != FERRY_OK);
    PyObject *rv;
    if (st == FERRY_OK) {
        PyObject *val;
        if (r->n_out == 1) {
            val = r->b.arrays[0];
            r->b.arrays[0] = NULL;
        } else {
            val = PyTuple_New(r->n_out);
            for (int i = 0; val && i < r->n_out; i++) {
                PyTuple_SET_ITEM(val, i, r->b.arrays[i]);
                r->b.arrays[i] = NULL;
            }
        }
        rv = val ? PyObject_CallMethodOneArg(r->future, s_set_result, val) : NULL;
        Py_XDECREF(val);
    } else {
        PyObject *exc = status_exception(st, msg);
        rv = exc ? PyObject_CallMethodOneArg(r->future, s_set_exception, exc) : NULL;
        Py_XDECREF(exc);
    }
    if (!rv)
        PyErr_WriteUnraisable(r->future);
    Py_XDECREF(rv);
    for (int i = 0; i < r->n_out; i++)
        Py_CLEAR(r->b.arrays[i]);
    Py_DECREF(r->future);
    PyMem_RawFree(r);
    in_callback--;
    PyGILState_Release(g);
}

static PyObject *Engine_submit(EngineObject *self, PyObject *args)
{
    PyObject *xs, *future;
    if (!engine_ready(self) || !PyArg_ParseTuple(args, "OO", &xs, &future))
        return NULL;
    submit_req *r = PyMem_RawCalloc(1, sizeof *r);
    if (!r)
        return PyErr_NoMemory();
    if (batch_prepare(self, xs, &r->b) < 0) {
        PyMem_RawFree(r);
        return NULL;
    }
    r->owner = self;
    r->n_out = self->n_out;
    r->future = future;
    Py_INCREF(future);
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
        st = ferry_engine_submit(self->e, r->b.in, r->b.n_in, r->b.out, r->b.n_out, submit_done, r);
    Py_END_ALLOW_THREADS
    if (st != FERRY_OK) {
        batch_release(&r->b, 1);
        Py_DECREF(future);
        PyMem_RawFree(r);
        return raise_status(st);
    }
    Py_RETURN_NONE;
}

static PyObject *Engine_warmup(EngineObject *self, PyObject *noargs)
{
    if (!engine_ready(self))
        return NULL;
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
        st = ferry_engine_warmup(self->e);
    Py_END_ALLOW_THREADS
    if (st != FERRY_OK)
        return raise_status(st);
    Py_RETURN_NONE;
}

static PyObject *info_list(const ferry_tensor_info *ti, int n)
{
    PyObject *l = PyList_New(n);
    for (int i = 0; l && i < n; i++) {
        PyObject *shape = shape_tuple(ti[i].shape, ti[i].ndim);
        PyObject *t =
            shape ? Py_BuildValue("(ssN)", ti[i].name, ferry_dtype_name(ti[i].dtype), shape) : NULL;
        if (!t) {
            Py_DECREF(l);
            return NULL;
        }
        PyList_SET_ITEM(l, i, t);
    }
    return l;
}

static PyObject *Engine_inputs(EngineObject *self, void *c)
{
    return engine_ready(self) ? info_list(self->in, self->n_in) : NULL;
}

static PyObject *Engine_outputs(EngineObject *self, void *c)
{
    return engine_ready(self) ? info_list(self->out, self->n_out) : NULL;
}

static PyObject *Engine_device(EngineObject *self, void *c)
{
    return engine_ready(self) ? PyUnicode_FromString(ferry_engine_device(self->e)) : NULL;
}

static PyObject *Engine_max_batch(EngineObject *self, void *c)
{
    return PyLong_FromLong(self->max_batch);
}

static PyObject *Engine_ops(EngineObject *self, PyObject *noargs)
{
    if (!engine_ready(self))
        return NULL;
    int n = 0;
    ferry_status st = ferry_model_ops(self->m, NULL, 0, &n);
    if (st != FERRY_OK)
        return raise_status(st);
    ferry_op_count *ops = PyMem_Calloc((size_t)(n ? n : 1), sizeof *ops);
    if (!ops)
        return PyErr_NoMemory();
    ferry_model_ops(self->m, ops, n, &n);
    PyObject *d = PyDict_New();
    for (int i = 0; d && i < n; i++) {
        PyObject *v = PyLong_FromLong(ops[i].count);
        if (!v || PyDict_SetItemString(d, ops[i].op, v) < 0)
            Py_CLEAR(d);
        Py_XDECREF(v);
    }
    PyMem_Free(ops);
    return d;
}

static PyObject *Engine_plan(EngineObject *self, PyObject *noargs)
{
    if (!engine_ready(self))
        return NULL;
    int n = 0;
    ferry_status st = ferry_model_plan(self->m, NULL, 0, &n);
    if (st != FERRY_OK)
        return raise_status(st);
    ferry_step_info *steps = PyMem_Calloc((size_t)(n ? n : 1), sizeof *steps);
    if (!steps)
        return PyErr_NoMemory();
    if ((st = ferry_model_plan(self->m, steps, n, &n)) != FERRY_OK) {
        PyMem_Free(steps);
        return raise_status(st);
    }
    PyObject *l = PyList_New(n);
    for (int i = 0; l && i < n; i++) {
        PyObject *shape = shape_tuple(steps[i].output.shape, steps[i].output.ndim);
        PyObject *t =
            shape ? Py_BuildValue("{s:s,s:s,s:s,s:s,s:N}", "op", steps[i].op, "name", steps[i].name,
                                  "epilogue", steps[i].epilogue, "output",
                                  steps[i].output.name ? steps[i].output.name : "", "shape", shape)
                  : NULL;
        if (!t) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, i, t);
    }
    PyMem_Free(steps);
    return l;
}

static PyObject *Engine_stats(EngineObject *self, PyObject *noargs)
{
    if (!engine_ready(self))
        return NULL;
    ferry_engine_stats s;
    ferry_engine_get_stats(self->e, &s);
    return Py_BuildValue("{s:K,s:K,s:K}", "batches", (unsigned long long)s.batches, "samples",
                         (unsigned long long)s.samples, "compute_us",
                         (unsigned long long)s.compute_us);
}

static PyObject *Engine_info(EngineObject *self, PyObject *noargs)
{
    if (!engine_ready(self))
        return NULL;
    return Py_BuildValue("{s:s,s:L,s:L}", "producer", ferry_model_producer(self->m), "opset",
                         (long long)ferry_model_opset(self->m), "parameters",
                         (long long)ferry_model_param_count(self->m));
}

/* _time_c(x, iters): seconds for iters ferry_engine_run calls on x made
 * from C with the GIL released: the baseline that Python's call overhead
 * is measured against (python/bench/overhead.py). */
static PyObject *Engine_time_c(EngineObject *self, PyObject *args)
{
    PyObject *xs;
    long long iters;
    if (!engine_ready(self) || !PyArg_ParseTuple(args, "OL", &xs, &iters))
        return NULL;
    batch_io b;
    if (batch_prepare(self, xs, &b) < 0)
        return NULL;
    ferry_status st = FERRY_OK;
    struct timespec t0, t1;
    Py_BEGIN_ALLOW_THREADS
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (long long k = 0; k < iters && st == FERRY_OK; k++)
            st = ferry_engine_run(self->e, b.in, b.n_in, b.out, b.n_out);
        clock_gettime(CLOCK_MONOTONIC, &t1);
    Py_END_ALLOW_THREADS
    batch_release(&b, 1);
    if (st != FERRY_OK)
        return raise_status(st);
    return PyFloat_FromDouble((double)(t1.tv_sec - t0.tv_sec) +
                              1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
}

static PyMethodDef Engine_methods[] = {
    {"_time_c", (PyCFunction)Engine_time_c, METH_VARARGS, "_time_c(x, iters) -> seconds"},
    {"run", (PyCFunction)Engine_run, METH_O, "run(batches) -> list of outputs"},
    {"submit", (PyCFunction)Engine_submit, METH_VARARGS, "submit(x, future)"},
    {"warmup", (PyCFunction)Engine_warmup, METH_NOARGS, "runs every worker once"},
    {"ops", (PyCFunction)Engine_ops, METH_NOARGS, "operators that run, with counts"},
    {"plan", (PyCFunction)Engine_plan, METH_NOARGS, "the fused plan, one dict a step"},
    {"stats", (PyCFunction)Engine_stats, METH_NOARGS, "batches, samples, compute_us"},
    {"info", (PyCFunction)Engine_info, METH_NOARGS, "producer, opset, parameters"},
    {NULL}};

static PyGetSetDef Engine_getset[] = {
    {"inputs", (getter)Engine_inputs, NULL, "[(name, dtype, shape)]", NULL},
    {"outputs", (getter)Engine_outputs, NULL, "[(name, dtype, shape)]", NULL},
    {"device", (getter)Engine_device, NULL, "the device, described", NULL},
    {"max_batch", (getter)Engine_max_batch, NULL, "largest batch a worker runs", NULL},
    {NULL}};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ferry._ferry.Engine",
    .tp_basicsize = sizeof(EngineObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Engine_init,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_call = (ternaryfunc)Engine_call,
    .tp_methods = Engine_methods,
    .tp_getset = Engine_getset,
    .tp_doc = "Engine(model, device, workers, max_batch, pipeline_depth, precision, graphs)",
};

/* ----------------------------------------------------------- batcher */

typedef struct {
    PyObject_HEAD EngineObject *engine;
    ferry_batcher *b;  /* NULL once closed: no new call starts */
    atomic_int active; /* infer calls between their check of b and their return */
} BatcherObject;

static int Batcher_init(BatcherObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {
        "engine", "max_batch", "max_delay_us", "max_queue", "preferred_batch_sizes", NULL};
    PyObject *eng, *pref = NULL;
    int max_batch = 0, max_queue = 65536;
    long long delay = 500;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!|iLiO", kwlist, &EngineType, &eng, &max_batch,
                                     &delay, &max_queue, &pref))
        return -1;
    if (self->b)
        return 0;
    if (!engine_ready((EngineObject *)eng))
        return -1;
    ferry_batcher_config cfg;
    ferry_batcher_config_init(&cfg);
    cfg.max_batch = max_batch;
    cfg.max_delay_us = delay;
    cfg.max_queue = max_queue;
    if (pref && pref != Py_None) {
        PyObject *seq = PySequence_Fast(pref, "preferred_batch_sizes: a sequence of ints");
        if (!seq)
            return -1;
        Py_ssize_t np_ = PySequence_Fast_GET_SIZE(seq);
        if (np_ > FERRY_MAX_PREFERRED) {
            Py_DECREF(seq);
            PyErr_Format(err_cls[FERRY_EINVAL], "preferred_batch_sizes: at most %d sizes",
                         FERRY_MAX_PREFERRED);
            return -1;
        }
        for (Py_ssize_t i = 0; i < np_; i++)
            cfg.preferred_batch_sizes[i] = (int)PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        cfg.n_preferred = (int)np_;
        Py_DECREF(seq);
        if (PyErr_Occurred())
            return -1;
    }
    ferry_status st;
    ferry_engine *e = ((EngineObject *)eng)->e;
    Py_BEGIN_ALLOW_THREADS
        st = ferry_batcher_create(e, &cfg, &self->b);
    Py_END_ALLOW_THREADS
    if (st != FERRY_OK) {
        raise_status(st);
        return -1;
    }
    Py_INCREF(eng);
    self->engine = (EngineObject *)eng;
    return 0;
}

/* Closes: no new infer starts (b is NULL, checked with the GIL held); the
 * ones already past that check finish (destroy answers every accepted
 * request), then the batcher is destroyed. */
static void batcher_close(BatcherObject *self)
{
    ferry_batcher *b = self->b;
    if (!b)
        return;
    self->b = NULL;
    Py_BEGIN_ALLOW_THREADS
        while (atomic_load(&self->active) > 0)
            usleep(100);
        ferry_batcher_destroy(b);
    Py_END_ALLOW_THREADS
}

static void Batcher_dealloc(BatcherObject *self)
{
    batcher_close(self);
    Py_CLEAR(self->engine);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Batcher_infer(BatcherObject *self, PyObject *args)
{
    if (!self->b) {
        PyErr_SetString(err_cls[FERRY_ESHUTDOWN], "ferry: the batcher is closed");
        return NULL;
    }
    EngineObject *eng = self->engine;
    PyObject *xs = PyTuple_GET_SIZE(args) == 1 ? PyTuple_GET_ITEM(args, 0) : args;
    batch_io b;
    if (batch_prepare(eng, xs, &b) < 0)
        return NULL;
    ferry_status st;
    ferry_batcher *fb = self->b;
    if (!fb) { /* closed while the arrays were made */
        batch_release(&b, 1);
        PyErr_SetString(err_cls[FERRY_ESHUTDOWN], "ferry: the batcher is closed");
        return NULL;
    }
    atomic_fetch_add(&self->active, 1);
    Py_BEGIN_ALLOW_THREADS
        st = ferry_batcher_infer(fb, b.in, b.n_in, b.out, b.n_out, NULL);
        atomic_fetch_sub(&self->active, 1);
    Py_END_ALLOW_THREADS
    if (st != FERRY_OK) {
        batch_release(&b, 1);
        return raise_status(st);
    }
    batch_release(&b, 0);
    return batch_result(eng, &b);
}

static PyObject *Batcher_close(BatcherObject *self, PyObject *noargs)
{
    batcher_close(self);
    Py_RETURN_NONE;
}

static PyObject *Batcher_stats(BatcherObject *self, PyObject *noargs)
{
    if (!self->b) {
        PyErr_SetString(err_cls[FERRY_ESHUTDOWN], "ferry: the batcher is closed");
        return NULL;
    }
    ferry_batcher_stats s;
    ferry_batcher_get_stats(self->b, &s);
    return Py_BuildValue(
        "{s:K,s:K,s:K,s:K,s:K,s:K,s:K}", "submitted", (unsigned long long)s.submitted, "succeeded",
        (unsigned long long)s.succeeded, "failed", (unsigned long long)s.failed, "rejected",
        (unsigned long long)s.rejected, "expired", (unsigned long long)s.expired, "batches",
        (unsigned long long)s.batches, "samples", (unsigned long long)s.samples);
}

static PyMethodDef Batcher_methods[] = {
    {"infer", (PyCFunction)Batcher_infer, METH_VARARGS, "infer(x) -> output; any thread"},
    {"close", (PyCFunction)Batcher_close, METH_NOARGS, "drains and stops"},
    {"stats", (PyCFunction)Batcher_stats, METH_NOARGS, "request and batch counts"},
    {NULL}};

static PyTypeObject BatcherType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ferry._ferry.Batcher",
    .tp_basicsize = sizeof(BatcherObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Batcher_init,
    .tp_dealloc = (destructor)Batcher_dealloc,
    .tp_methods = Batcher_methods,
    .tp_doc = "Batcher(engine, max_batch=0, max_delay_us=500, max_queue=65536)",
};

/* -------------------------------------------------------------- pool */

typedef struct {
    PyObject_HEAD ferry_pool *p;
    ferry_dtype dt;
    int ndim;
    int64_t shape[FERRY_MAX_DIMS];
    int host; /* its memory is host memory (cpu, pinned) */
} PoolObject;

static ferry_dtype dtype_from_name(const char *s)
{
    static const struct {
        const char *n;
        ferry_dtype dt;
    } tab[] = {{"float32", FERRY_F32}, {"float16", FERRY_F16}, {"float64", FERRY_F64},
               {"int64", FERRY_I64},   {"int32", FERRY_I32},   {"int8", FERRY_I8},
               {"uint8", FERRY_U8},    {"bool", FERRY_BOOL}};
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (!strcmp(s, tab[i].n))
            return tab[i].dt;
    return FERRY_DTYPE_UNDEFINED;
}

static int Pool_init(PoolObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"shape", "dtype", "device", "pool_size", NULL};
    PyObject *shape;
    const char *dtype = "float32", *device = "cpu";
    int size = 8;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|ssi", kwlist, &shape, &dtype, &device, &size))
        return -1;
    if (self->p)
        return 0;
    self->dt = dtype_from_name(dtype);
    if (self->dt == FERRY_DTYPE_UNDEFINED) {
        PyErr_Format(err_cls[FERRY_EDTYPE], "ferry.TensorPool: dtype '%s' is not supported", dtype);
        return -1;
    }
    PyObject *seq = PySequence_Fast(shape, "ferry.TensorPool: shape must be a sequence of ints");
    if (!seq)
        return -1;
    Py_ssize_t nd = PySequence_Fast_GET_SIZE(seq);
    if (nd < 1 || nd > FERRY_MAX_DIMS) {
        Py_DECREF(seq);
        PyErr_Format(err_cls[FERRY_EINVAL], "ferry.TensorPool: shape has %zd dims; 1..%d", nd,
                     FERRY_MAX_DIMS);
        return -1;
    }
    for (Py_ssize_t d = 0; d < nd; d++)
        self->shape[d] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, d));
    Py_DECREF(seq);
    if (PyErr_Occurred())
        return -1;
    self->ndim = (int)nd;
    self->host = strncmp(device, "cuda", 4) != 0;
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
        st = ferry_pool_create(self->shape, self->ndim, self->dt, device, size, &self->p);
    Py_END_ALLOW_THREADS
    if (st != FERRY_OK) {
        raise_status(st);
        return -1;
    }
    return 0;
}

static void Pool_dealloc(PoolObject *self)
{
    /* EBUSY (tensors still out) leaks the pool rather than free memory
     * that arrays may still view */
    if (self->p && ferry_pool_destroy(self->p) != FERRY_OK &&
        PyErr_WarnEx(PyExc_ResourceWarning,
                     "ferry.TensorPool destroyed with tensors still acquired: its memory is "
                     "kept",
                     1) < 0)
        PyErr_WriteUnraisable((PyObject *)self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* acquire(timeout_us=-1) -> (address, nbytes) */
static PyObject *Pool_acquire(PoolObject *self, PyObject *args)
{
    long long timeout = -1;
    if (!PyArg_ParseTuple(args, "|L", &timeout))
        return NULL;
    ferry_tensor t;
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
        st = ferry_pool_acquire(self->p, timeout, &t);
    Py_END_ALLOW_THREADS
    if (st != FERRY_OK)
        return raise_status(st);
    return Py_BuildValue(
        "(KK)", (unsigned long long)(uintptr_t)t.data,
        (unsigned long long)(ferry_tensor_numel(&t) * (int64_t)ferry_dtype_size(t.dtype)));
}

/* view(address, nbytes) -> a writable memoryview of host memory */
static PyObject *Pool_view(PoolObject *self, PyObject *args)
{
    unsigned long long addr, n;
    if (!PyArg_ParseTuple(args, "KK", &addr, &n))
        return NULL;
    if (!self->host) {
        PyErr_SetString(err_cls[FERRY_EUNSUPPORTED],
                        "ferry.TensorPool: device memory cannot be viewed from Python");
        return NULL;
    }
    return PyMemoryView_FromMemory((char *)(uintptr_t)addr, (Py_ssize_t)n, PyBUF_WRITE);
}

static PyObject *Pool_release(PoolObject *self, PyObject *args)
{
    unsigned long long addr;
    if (!PyArg_ParseTuple(args, "K", &addr))
        return NULL;
    ferry_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = self->dt;
    t.ndim = self->ndim;
    memcpy(t.shape, self->shape, sizeof t.shape);
    t.data = (void *)(uintptr_t)addr;
    ferry_status st = ferry_pool_release(self->p, &t);
    if (st != FERRY_OK)
        return raise_status(st);
    Py_RETURN_NONE;
}

static PyObject *Pool_stats(PoolObject *self, PyObject *noargs)
{
    ferry_pool_stats s;
    ferry_pool_get_stats(self->p, &s);
    return Py_BuildValue("{s:K,s:K,s:K,s:i,s:i,s:i}", "acquisitions",
                         (unsigned long long)s.acquisitions, "waits", (unsigned long long)s.waits,
                         "timeouts", (unsigned long long)s.timeouts, "in_use", s.in_use,
                         "high_water", s.high_water, "size", s.size);
}

static PyMethodDef Pool_methods[] = {
    {"acquire", (PyCFunction)Pool_acquire, METH_VARARGS, "acquire(timeout_us=-1)"},
    {"view", (PyCFunction)Pool_view, METH_VARARGS, "view(address, nbytes)"},
    {"release", (PyCFunction)Pool_release, METH_VARARGS, "release(address)"},
    {"stats", (PyCFunction)Pool_stats, METH_NOARGS, "counters"},
    {NULL}};

static PyTypeObject PoolType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ferry._ferry.Pool",
    .tp_basicsize = sizeof(PoolObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Pool_init,
    .tp_dealloc = (destructor)Pool_dealloc,
    .tp_methods = Pool_methods,
    .tp_doc = "Pool(shape, dtype='float32', device='cpu', pool_size=8)",
};

/* ------------------------------------------------------------ module */

static PyObject *mod_version(PyObject *m, PyObject *noargs)
{
    return PyUnicode_FromString(ferry_version());
}

static PyObject *mod_backends(PyObject *m, PyObject *noargs)
{
    char buf[4096];
    ferry_backends_describe(buf, sizeof buf);
    return PyUnicode_FromString(buf);
}

/* The inputs or outputs of a summary, symbolic dims by their names. */
static PyObject *summary_ios(const ferry_summary *sm, int is_output)
{
    int n = is_output ? ferry_summary_num_outputs(sm) : ferry_summary_num_inputs(sm);
    PyObject *l = PyList_New(n);
    for (int i = 0; l && i < n; i++) {
        ferry_tensor_info ti;
        if (is_output)
            ferry_summary_output(sm, i, &ti);
        else
            ferry_summary_input(sm, i, &ti);
        PyObject *shape = PyTuple_New(ti.ndim);
        for (int d = 0; shape && d < ti.ndim; d++) {
            const char *ax = ferry_summary_axis(sm, is_output, i, d);
            PyObject *v = ti.shape[d] >= 0 ? PyLong_FromLongLong(ti.shape[d])
                                           : PyUnicode_FromString(ax && *ax ? ax : "?");
            if (!v)
                Py_CLEAR(shape);
            else
                PyTuple_SET_ITEM(shape, d, v);
        }
        PyObject *t =
            shape ? Py_BuildValue("(ssN)", ti.name, ferry_dtype_name(ti.dtype), shape) : NULL;
        if (!t) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, i, t);
    }
    return l;
}

/* summarize(path): what the file declares, without loading it. */
static PyObject *mod_summarize(PyObject *m, PyObject *arg)
{
    PyObject *path = NULL;
    if (!PyUnicode_FSConverter(arg, &path))
        return NULL;
    ferry_summary *sm = NULL;
    ferry_status st;
    const char *p = PyBytes_AS_STRING(path);
    Py_BEGIN_ALLOW_THREADS
        st = ferry_summary_load(p, &sm);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (st != FERRY_OK)
        return raise_status(st);
    PyObject *ops = PyDict_New();
    for (int k = 0; ops && k < ferry_summary_num_ops(sm); k++) {
        const char *name;
        int count, supported;
        ferry_summary_op(sm, k, &name, &count, &supported);
        PyObject *v = Py_BuildValue("(iO)", count, supported ? Py_True : Py_False);
        if (!v || PyDict_SetItemString(ops, name, v) < 0)
            Py_CLEAR(ops);
        Py_XDECREF(v);
    }
    PyObject *r =
        ops ? Py_BuildValue("{s:s,s:L,s:i,s:N,s:N,s:N}", "producer", ferry_summary_producer(sm),
                            "opset", (long long)ferry_summary_opset(sm), "nodes",
                            ferry_summary_num_nodes(sm), "inputs", summary_ios(sm, 0), "outputs",
                            summary_ios(sm, 1), "ops", ops)
            : NULL;
    ferry_summary_destroy(sm);
    return r;
}

static PyMethodDef mod_methods[] = {
    {"summarize", mod_summarize, METH_O,
     "summarize(path): inputs, outputs (axes by name), operators (count, supported)"},
    {"version", mod_version, METH_NOARGS, "the loaded libferry's version"},
    {"backends", mod_backends, METH_NOARGS, "backends built in and devices seen"},
    {NULL}};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_ferry", "Ferry's C extension", -1,
                                    mod_methods};

PyMODINIT_FUNC PyInit__ferry(void)
{
    PyObject *m = PyModule_Create(&moddef);
    if (!m)
        return NULL;
    PyObject *np = PyImport_ImportModule("numpy");
    if (!np)
        goto fail;
    np_empty = PyObject_GetAttrString(np, "empty");
    np_ascontig = PyObject_GetAttrString(np, "ascontiguousarray");
    Py_DECREF(np);
    s_set_result = PyUnicode_InternFromString("set_result");
    s_set_exception = PyUnicode_InternFromString("set_exception");
    if (!np_empty || !np_ascontig || !s_set_result || !s_set_exception || make_errors(m) < 0)
        goto fail;
    if (PyType_Ready(&EngineType) < 0 || PyType_Ready(&BatcherType) < 0 ||
        PyType_Ready(&PoolType) < 0)
        goto fail;
    if (PyModule_AddObjectRef(m, "Engine", (PyObject *)&EngineType) < 0 ||
        PyModule_AddObjectRef(m, "Batcher", (PyObject *)&BatcherType) < 0 ||
        PyModule_AddObjectRef(m, "Pool", (PyObject *)&PoolType) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
