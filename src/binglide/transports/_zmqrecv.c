/* One multipart ZeroMQ message received in one call: binglide's compiled receive.
 *
 * Why: pyzmq says whether more frames follow only on a `zmq.Frame` (a Python
 * object made and freed per frame) or through `Socket.get(RCVMORE)` (a
 * `SocketOption` lookup a frame); either costs about 0.5 us a frame, four
 * times receiving the frame's bytes. A request crosses ~25 frames on its way
 * through client, broker and worker, so that was ~14 us of CPU a request:
 * with this receive the pipelined rate rose by a quarter (bench/RESULTS.md,
 * issue 13, fourteenth pass).
 *
 * How: libzmq is the one pyzmq loaded. `bind(path)` opens pyzmq's backend
 * module again (RTLD_NOLOAD: it is loaded already) and looks the few zmq_msg_*
 * functions up through it, which finds them in the libzmq it depends on,
 * bundled or the system's. Nothing links against libzmq at build time.
 *
 * `receive(handle, flags, threshold)` receives one whole message from the
 * socket whose `zmq_socket` pointer is `handle` (pyzmq's `Socket.underlying`)
 * and returns a list of its frames: bytes for frames shorter than
 * `threshold`, else a (writable) memoryview of a `Message` that keeps
 * ZeroMQ's buffer (no copy). On an error it returns the errno as an int (EAGAIN when
 * ZMQ_DONTWAIT found no message), which the caller raises as pyzmq would.
 * A blocking wait releases the GIL; a signal that interrupts it runs its
 * Python handler (whose exception propagates) and the wait goes on, as in
 * pyzmq's own receive.
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

static int (*zmq_msg_init_)(zmq_msg_t *);
static int (*zmq_msg_recv_)(zmq_msg_t *, void *, int);
static int (*zmq_msg_close_)(zmq_msg_t *);
static int (*zmq_msg_move_)(zmq_msg_t *, zmq_msg_t *);
static void *(*zmq_msg_data_)(zmq_msg_t *);
static size_t (*zmq_msg_size_)(const zmq_msg_t *);
static int (*zmq_msg_more_)(const zmq_msg_t *);
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
    .tp_name = "binglide.transports._zmqrecv.Message",
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
    zmq_errno_ = dlsym(handle, "zmq_errno");
    zmq_version_ = dlsym(handle, "zmq_version");
    /* The handle stays open: the functions live as long as the process. */
    if (!(zmq_msg_init_ && zmq_msg_recv_ && zmq_msg_close_ && zmq_msg_move_ && zmq_msg_data_ &&
          zmq_msg_size_ && zmq_msg_more_ && zmq_errno_ && zmq_version_)) {
        zmq_msg_recv_ = NULL;
        PyErr_SetString(PyExc_OSError, "libzmq's zmq_msg_* functions were not found");
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

static PyMethodDef methods[] = {
    {"bind", (PyCFunction)bind, METH_O,
     "bind(path): use the libzmq that pyzmq's backend module at `path` loaded."},
    {"receive", (PyCFunction)(void (*)(void))receive, METH_FASTCALL,
     "receive(handle, flags, threshold) -> list of frames, or an errno."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "binglide.transports._zmqrecv",
    .m_doc = "One multipart ZeroMQ message received in one call (see the C source).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__zmqrecv(void) {
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
