/* binglide's compiled ZeroMQ calls: a whole multipart message received or
 * sent in one call, and a socket's ZMQ_EVENTS read.
 *
 * Why: pyzmq says whether more frames follow only on a `zmq.Frame` (a Python
 * object made and freed per frame) or through `Socket.get(RCVMORE)` (a
 * `SocketOption` lookup a frame); either costs about 0.5 us a frame, four
 * times receiving the frame's bytes. A request crosses ~25 frames on its way
 * through client, broker and worker, so that was ~14 us of CPU a request:
 * with this receive the pipelined rate rose by a quarter (bench/RESULTS.md,
 * issue 13, fourteenth pass). Sending frame by frame through pyzmq costs
 * ~0.4 us a frame more than one C call a message, and a look at a socket's
 * events through `zmq_poll` (pyzmq builds its poll items, libzmq a poller)
 * twice a read of ZMQ_EVENTS (fifteenth pass).
 *
 * How: libzmq is the one pyzmq loaded. `bind(path)` opens pyzmq's backend
 * module again (RTLD_NOLOAD: it is loaded already) and looks the few zmq_*
 * functions up through it, which finds them in the libzmq it depends on,
 * bundled or the system's. Nothing links against libzmq at build time.
 *
 * Each function takes the socket's `zmq_socket` pointer as `handle` (pyzmq's
 * `Socket.underlying`: 0 once closed, which gives ENOTSOCK) and returns
 * errors as errno values, which the caller raises as pyzmq would:
 *
 * - `receive(handle, flags, threshold)` receives one whole message and
 *   returns a list of its frames: bytes for frames shorter than `threshold`,
 *   else a (writable) memoryview of a `Message` that keeps ZeroMQ's buffer
 *   (no copy). On an error it returns the errno as an int (EAGAIN when
 *   ZMQ_DONTWAIT found no message).
 * - `send(handle, frames, flags, threshold)` sends `frames` (a sequence of
 *   bytes-like objects) as one message, each copied, and returns 0, or an
 *   errno, or -1 without sending anything when a frame is `threshold` bytes
 *   or more: such frames go without a copy, which pyzmq's send does (it keeps
 *   the object alive until ZeroMQ's I/O thread is done with it).
 * - `events(handle)` returns ZMQ_EVENTS (its POLLIN and POLLOUT bits), or
 *   minus an errno.
 *
 * A blocking wait releases the GIL; a signal that interrupts it runs its
 * Python handler (whose exception propagates) and the wait goes on, as in
 * pyzmq's own calls.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>

/* zmq_msg_t is 64 opaque bytes, 8-aligned, since libzmq 4.1 (zmq.h). */
typedef struct {
    _Alignas(8) unsigned char _[64];
} zmq_msg_t;

#define ZMQ_DONTWAIT 1
#define ZMQ_SNDMORE 2
#define ZMQ_EVENTS 15

static int (*zmq_msg_init_)(zmq_msg_t *);
static int (*zmq_msg_recv_)(zmq_msg_t *, void *, int);
static int (*zmq_msg_close_)(zmq_msg_t *);
static int (*zmq_msg_move_)(zmq_msg_t *, zmq_msg_t *);
static void *(*zmq_msg_data_)(zmq_msg_t *);
static size_t (*zmq_msg_size_)(const zmq_msg_t *);
static int (*zmq_msg_more_)(const zmq_msg_t *);
static int (*zmq_send_)(void *, const void *, size_t, int);
static int (*zmq_getsockopt_)(void *, int, void *, size_t *);
static int (*zmq_errno_)(void);
static void (*zmq_version_)(int *, int *, int *);

/* -- Message: a received frame's buffer, kept by ZeroMQ until released -- */

typedef struct {
    PyObject_HEAD
    zmq_msg_t msg;
} Message;

static void Message_dealloc(Message *self) {
    zmq_msg_close_(&self->msg);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Message_getbuffer(Message *self, Py_buffer *view, int flags) {
    /* Writable, as pyzmq's `Frame.buffer` is: arrays made on it are too. */
    return PyBuffer_FillInfo(view, (PyObject *)self, zmq_msg_data_(&self->msg),
                             (Py_ssize_t)zmq_msg_size_(&self->msg), 0, flags);
}

static PyBufferProcs Message_as_buffer = {
    .bf_getbuffer = (getbufferproc)Message_getbuffer,
};

static PyTypeObject MessageType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "binglide.transports._zmqio.Message",
    .tp_basicsize = sizeof(Message),
    .tp_dealloc = (destructor)Message_dealloc,
    .tp_as_buffer = &Message_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A received frame's buffer, ZeroMQ's.",
};

/* -- bind --------------------------------------------------------------- */

static PyObject *bind(PyObject *module, PyObject *arg) {
    (void)module;
    PyObject *bytes_path;
    if (!PyUnicode_FSConverter(arg, &bytes_path)) {
        return NULL;
    }
    void *handle = dlopen(PyBytes_AS_STRING(bytes_path), RTLD_NOW | RTLD_NOLOAD);
    Py_DECREF(bytes_path);
    if (handle == NULL) {
        const char *why = dlerror();
        PyErr_Format(PyExc_OSError, "pyzmq's backend is not loaded: %s", why ? why : "?");
        return NULL;
    }
    zmq_msg_init_ = dlsym(handle, "zmq_msg_init");
    zmq_msg_recv_ = dlsym(handle, "zmq_msg_recv");
    zmq_msg_close_ = dlsym(handle, "zmq_msg_close");
    zmq_msg_move_ = dlsym(handle, "zmq_msg_move");
    zmq_msg_data_ = dlsym(handle, "zmq_msg_data");
    zmq_msg_size_ = dlsym(handle, "zmq_msg_size");
    zmq_msg_more_ = dlsym(handle, "zmq_msg_more");
    zmq_send_ = dlsym(handle, "zmq_send");
    zmq_getsockopt_ = dlsym(handle, "zmq_getsockopt");
    zmq_errno_ = dlsym(handle, "zmq_errno");
    zmq_version_ = dlsym(handle, "zmq_version");
    /* The handle stays open: the functions live as long as the process. */
    if (!(zmq_msg_init_ && zmq_msg_recv_ && zmq_msg_close_ && zmq_msg_move_ && zmq_msg_data_ &&
          zmq_msg_size_ && zmq_msg_more_ && zmq_send_ && zmq_getsockopt_ && zmq_errno_ &&
          zmq_version_)) {
        zmq_msg_recv_ = NULL;
        PyErr_SetString(PyExc_OSError, "libzmq's zmq_* functions were not found");
        return NULL;
    }
    int major, minor, patch;
    zmq_version_(&major, &minor, &patch);
    if (major < 4 || (major == 4 && minor < 1)) {
        zmq_msg_recv_ = NULL;
        PyErr_Format(PyExc_OSError, "libzmq %d.%d.%d is older than 4.1", major, minor, patch);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* -- receive ------------------------------------------------------------ */

/* Receive one frame into `msg`; 0, or the errno (EINTR handled), or -1 with a Python error. */
static int receive_one(zmq_msg_t *msg, void *socket, int flags) {
    for (;;) {
        int rc;
        if (flags & ZMQ_DONTWAIT) {
            rc = zmq_msg_recv_(msg, socket, flags);
        } else {
            Py_BEGIN_ALLOW_THREADS
            rc = zmq_msg_recv_(msg, socket, flags);
            Py_END_ALLOW_THREADS
        }
        if (rc >= 0) {
            return 0;
        }
        int error = zmq_errno_();
        if (error != EINTR) {
            return error;
        }
        if (PyErr_CheckSignals() < 0) {
            return -1; /* the signal handler raised */
        }
    }
}

static PyObject *receive(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "receive(handle, flags, threshold)");
        return NULL;
    }
    if (zmq_msg_recv_ == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bind() first");
        return NULL;
    }
    void *socket = PyLong_AsVoidPtr(args[0]);
    long flags = PyLong_AsLong(args[1]);
    Py_ssize_t threshold = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (socket == NULL) {
        return PyLong_FromLong(ENOTSOCK);
    }
    PyObject *frames = PyList_New(0);
    if (frames == NULL) {
        return NULL;
    }
    int more = 1;
    int frame_flags = (int)flags;
    while (more) {
        Message *holder;
        zmq_msg_t local;
        zmq_msg_t *msg = &local;
        zmq_msg_init_(msg);
        int error = receive_one(msg, socket, frame_flags);
        if (error != 0) {
            zmq_msg_close_(msg);
            Py_DECREF(frames);
            /* The frames after the first are there already (ZeroMQ delivers
             * a message whole), so an error there is the socket's end. */
            return error < 0 ? NULL : PyLong_FromLong(error);
        }
        frame_flags = 0;
        more = zmq_msg_more_(msg);
        Py_ssize_t size = (Py_ssize_t)zmq_msg_size_(msg);
        PyObject *frame;
        if (size < threshold) {
            frame = PyBytes_FromStringAndSize(zmq_msg_data_(msg), size);
            zmq_msg_close_(msg);
        } else {
            holder = PyObject_New(Message, &MessageType);
            if (holder == NULL) {
                zmq_msg_close_(msg);
                Py_DECREF(frames);
                return NULL;
            }
            /* The message moves into the holder, which closes it when the
             * last view of it goes. */
            zmq_msg_init_(&holder->msg);
            zmq_msg_move_(&holder->msg, msg);
            zmq_msg_close_(msg);
            frame = PyMemoryView_FromObject((PyObject *)holder);
            Py_DECREF(holder);
        }
        if (frame == NULL || PyList_Append(frames, frame) < 0) {
            Py_XDECREF(frame);
            Py_DECREF(frames);
            return NULL;
        }
        Py_DECREF(frame);
    }
    return frames;
}

/* -- send --------------------------------------------------------------- */

/* Send one frame (copied); 0, or the errno (EINTR handled), or -1 with a Python error.
 * A blocking send first tries without waiting, so that the GIL is released only
 * when it must wait (a ROUTER, the broker's socket, never does). */
static int send_one(void *socket, const void *data, size_t size, int flags) {
    if (zmq_send_(socket, data, size, flags | ZMQ_DONTWAIT) >= 0) {
        return 0;
    }
    int error = zmq_errno_();
    if (error != EINTR && (error != EAGAIN || (flags & ZMQ_DONTWAIT))) {
        return error;
    }
    for (;;) {
        if (error == EINTR && PyErr_CheckSignals() < 0) {
            return -1; /* the signal handler raised */
        }
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = zmq_send_(socket, data, size, flags);
        Py_END_ALLOW_THREADS
        if (rc >= 0) {
            return 0;
        }
        error = zmq_errno_();
        if (error != EINTR) {
            return error; /* EAGAIN too: ZMQ_SNDTIMEO ran out */
        }
    }
}

static PyObject *send(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "send(handle, frames, flags, threshold)");
        return NULL;
    }
    if (zmq_send_ == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bind() first");
        return NULL;
    }
    void *socket = PyLong_AsVoidPtr(args[0]);
    long flags = PyLong_AsLong(args[2]);
    Py_ssize_t threshold = PyLong_AsSsize_t(args[3]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    /* A tuple of the frames, ours: a list could change (its frames freed)
     * under a send that waits with the GIL released. */
    PyObject *frames = PySequence_Tuple(args[1]);
    if (frames == NULL) {
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(frames);
    PyObject **items = PySequence_Fast_ITEMS(frames);
    PyObject *result = NULL;
    /* The frames' bytes: a bytes object's own, or a buffer held from the
     * first look to the end, so that every frame is known whole before
     * the first goes (no error can come halfway through the message). */
    Py_buffer local[8];
    Py_buffer *views = local;
    Py_ssize_t held = 0;
    if (count == 0) {
        PyErr_SetString(PyExc_ValueError, "a message has at least one frame");
        goto done;
    }
    if (socket == NULL) {
        result = PyLong_FromLong(ENOTSOCK);
        goto done;
    }
    if (count > (Py_ssize_t)(sizeof(local) / sizeof(local[0]))) {
        views = PyMem_New(Py_buffer, count);
        if (views == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    /* Every frame small enough to copy, or nothing sent here: ZeroMQ takes
     * a multipart message whole or not at all, and so does this. */
    for (Py_ssize_t i = 0; i < count; i++) {
        if (PyBytes_CheckExact(items[i])) {
            views[i].buf = PyBytes_AS_STRING(items[i]);
            views[i].len = PyBytes_GET_SIZE(items[i]);
            views[i].obj = NULL; /* nothing to release */
        } else {
            if (PyObject_GetBuffer(items[i], &views[i], PyBUF_SIMPLE) < 0) {
                goto release;
            }
        }
        held = i + 1;
        if (views[i].len >= threshold) {
            result = PyLong_FromLong(-1);
            goto release;
        }
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        int frame_flags = i + 1 < count ? (int)flags | ZMQ_SNDMORE : (int)flags;
        int error = send_one(socket, views[i].buf, (size_t)views[i].len, frame_flags);
        if (error != 0) {
            /* The first frame's EAGAIN leaves nothing sent; a later frame
             * fails only when the socket or its context ends. */
            result = error < 0 ? NULL : PyLong_FromLong(error);
            goto release;
        }
    }
    result = PyLong_FromLong(0);
release:
    for (Py_ssize_t i = 0; i < held; i++) {
        if (views[i].obj != NULL) {
            PyBuffer_Release(&views[i]);
        }
    }
    if (views != local) {
        PyMem_Free(views);
    }
done:
    Py_DECREF(frames);
    return result;
}

/* -- events ------------------------------------------------------------- */

static PyObject *events(PyObject *module, PyObject *arg) {
    (void)module;
    if (zmq_getsockopt_ == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bind() first");
        return NULL;
    }
    void *socket = PyLong_AsVoidPtr(arg);
    if (socket == NULL) {
        return PyErr_Occurred() ? NULL : PyLong_FromLong(-ENOTSOCK);
    }
    int value = 0;
    size_t size = sizeof(value);
    /* Reading ZMQ_EVENTS processes the socket's pending commands, which
     * re-arms its edge-triggered descriptor (as zmq_poll does). */
    if (zmq_getsockopt_(socket, ZMQ_EVENTS, &value, &size) < 0) {
        return PyLong_FromLong(-zmq_errno_());
    }
    return PyLong_FromLong(value);
}

static PyMethodDef methods[] = {
    {"bind", (PyCFunction)bind, METH_O,
     "bind(path): use the libzmq that pyzmq's backend module at `path` loaded."},
    {"receive", (PyCFunction)(void (*)(void))receive, METH_FASTCALL,
     "receive(handle, flags, threshold) -> list of frames, or an errno."},
    {"send", (PyCFunction)(void (*)(void))send, METH_FASTCALL,
     "send(handle, frames, flags, threshold) -> 0, an errno, or -1 (a large frame: nothing sent)."},
    {"events", (PyCFunction)events, METH_O, "events(handle) -> ZMQ_EVENTS, or minus an errno."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "binglide.transports._zmqio",
    .m_doc = "binglide's compiled ZeroMQ calls: receive, send, events (see the C source).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__zmqio(void) {
    if (PyType_Ready(&MessageType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&MessageType);
    if (PyModule_AddObject(module, "Message", (PyObject *)&MessageType) < 0) {
        Py_DECREF(&MessageType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
