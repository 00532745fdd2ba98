/* Tracked Thread.start and create_task, in C: the records of `_origins.py`, without the Python-level cost
 * of a wrapper frame, the frame walk and the tuple building that every tracked creation pays. And one
 * frame variable read without copying them all (`frame_variable`, for `_cpython.frame_variable`).
 *
 * Optional: `_origins.py` has the same wrappers in Python and uses them when this module is not built.
 * `configure()` hands over everything the records read, once. Recording never raises: a record that
 * cannot be made is not made, and the host's call goes on; the host's own errors pass through untouched.
 *
 * Frames are read through the public frame API (PyThreadState_GetFrame, PyFrame_GetBack/GetCode/
 * GetLasti, 3.11+); a record keeps code objects and instruction offsets, never a frame.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <structmember.h>
#include <time.h>

#ifdef Py_GIL_DISABLED  /* the build fails, as an optional extension may: the Python wrappers are used */
#error "looseends' accelerator relies on the GIL (a free-threaded build would re-enable it on import)"
#endif

#ifndef Py_T_OBJECT_EX  /* before 3.12 */
#define Py_T_OBJECT_EX T_OBJECT_EX
#define Py_READONLY READONLY
#endif

/* Set by configure(); strong references held for the life of the process. */
static PyObject *state;          /* _tracking.state: labels, and the tasks mark */
static PyObject *sequence;       /* _tracking.sequence: an itertools.count, read with its C iternext */
static PyObject *running_loop;   /* asyncio.events._get_running_loop */
static PyObject *current_task;   /* asyncio.current_task */
static PyObject *current_tasks;  /* 3.11: the dict it reads (loop -> task), read here directly; or None */
static PyObject *c_task;         /* asyncio.Task: its get_name runs no Python code */
static PyObject *c_task_get_name;  /* its get_name descriptor, called without a method lookup */
static PyObject *task_name;      /* _cpython.task_name: a static read, for any other task class */
static PyObject *housekeeping;   /* tuple of the code objects of asyncio's own shutdown tasks */
static PyObject *verdicts;       /* dict: co_filename -> True for library code (a cache of judge) */
static PyObject *judge;          /* _library.is_library_file */
static PyObject *active;         /* threading._active: ident -> Thread */
static PyObject *thread_module;  /* _thread: its get_ident as it is now (gevent patches it) */
static PyObject *thread_names;   /* its dict: a module's dict is never replaced */
static PyObject *stock_get_ident;  /* _thread.get_ident when configured: then read without a call */
static PyObject *readable_name;  /* dict: Thread class -> whether `_name` reads without running code */
static PyObject *last_kind, *last_readable;  /* borrowed: the latest entry read from readable_name */
static PyObject *name_judge;     /* callable(class) -> bool, asked once per Thread class */
static PyObject *task_entries, *task_prune_at, *task_prune;
static PyObject *thread_entries, *thread_prune_at, *thread_prune;
static int task_hops, user_callers, thread_depth;

static PyObject *str_debug, *str_get_ident, *str_name, *str_get_name;
static PyObject *gc_get_objects;  /* gc.get_objects */

/* A time in seconds, as CPython computes time.monotonic() on Linux (nanoseconds, as seconds). */
static double
seconds_of(const struct timespec *time)
{
    return (double)((long long)time->tv_sec * 1000000000LL + time->tv_nsec) / 1e9;
}

/* A clock read in seconds, -1 if unreadable. */
static double
clock_seconds(clockid_t clock)
{
    struct timespec now;
    return clock_gettime(clock, &now) == 0 ? seconds_of(&now) : -1.0;
}

/* time.monotonic() without a call through Python: creation times are compared with it later. */
static double
now_seconds(void)
{
    return clock_seconds(CLOCK_MONOTONIC);
}

#ifdef CLOCK_MONOTONIC_COARSE
#define TASK_CLOCK CLOCK_MONOTONIC_COARSE  /* the last tick: a fraction of the precise clock's cost */
#else
#define TASK_CLOCK CLOCK_MONOTONIC
#endif

/* When the latest check began (`check_began`), on the same clock. */
static double checks_began;

/* A task's creation time: the coarse clock, never earlier than the latest check's start (-1 if
 * unreadable). So a task made after a check began reads as made during it, as the precise clock would
 * have it, and one made before reads as before (the coarse clock never runs ahead of the precise one). */
static double
task_created_now(void)
{
    double created = clock_seconds(TASK_CLOCK);
    return created >= 0 && created < checks_began ? checks_began : created;
}

/* A new reference to the frame `skip` callers above the innermost Python frame (the wrapper calling
 * us), or NULL without an error set. */
static PyFrameObject *
caller_frame(int skip)
{
    PyFrameObject *frame = PyThreadState_GetFrame(PyThreadState_Get());
    while (frame != NULL && skip-- > 0) {
        PyFrameObject *back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
    }
    return frame;
}

/* The latest verdicts by the filename object itself, in front of the `verdicts` dict: a frame walk asks
 * about the same few files for every task, and a pointer compare is a fraction of a dict lookup. Each
 * slot holds its filename (a string, nothing of the host's), so its address cannot be reused meanwhile. */
#define RECENT_FILES 64
static struct {
    PyObject *filename;
    int library;
} recent_files[RECENT_FILES];

static void
forget_recent_files(void)
{
    for (int i = 0; i < RECENT_FILES; i++) {
        Py_CLEAR(recent_files[i].filename);
    }
}

/* 1 for library code, 0 for user code, -1 on error. */
static int
is_library(PyCodeObject *code)
{
    PyObject *filename = code->co_filename;
    size_t slot = ((size_t)filename >> 4) % RECENT_FILES;  /* objects are 16-byte aligned */
    if (recent_files[slot].filename == filename) {
        return recent_files[slot].library;
    }
    PyObject *known = PyDict_GetItemWithError(verdicts, filename);  /* borrowed */
    int library;
    if (known != NULL) {
        library = known == Py_True;
    }
    else if (PyErr_Occurred()) {
        return -1;
    }
    else {
        PyObject *verdict = PyObject_CallOneArg(judge, filename);
        if (verdict == NULL) {
            return -1;
        }
        library = PyObject_IsTrue(verdict);
        Py_DECREF(verdict);
        if (library < 0 || PyDict_SetItem(verdicts, filename, library ? Py_True : Py_False) < 0) {
            return -1;
        }
    }
    Py_XSETREF(recent_files[slot].filename, Py_NewRef(filename));
    recent_files[slot].library = library;
    return library;
}

/* Code objects (strong) and instruction offsets gathered on the C stack: the offsets become ints only
 * when a record is built from them, which a task's record may never be (see `Pending`). */
#define MAX_PAIRS 32  /* configure() refuses depths that could need more */
typedef struct {
    int count;
    PyCodeObject *codes[MAX_PAIRS];
    int offsets[MAX_PAIRS];
} Locations;

/* Add the frame's code and offset (as `f_lasti` reads it). */
static void
add_location(Locations *found, PyFrameObject *frame, PyCodeObject *code)
{
    found->codes[found->count] = (PyCodeObject *)Py_NewRef(code);
    found->offsets[found->count++] = PyFrame_GetLasti(frame);
}

static void
forget(Locations *found)
{
    while (found->count > 0) {
        Py_DECREF(found->codes[--found->count]);
    }
}

/* Up to `depth` frames from `frame` (consumed), library or not. */
static void
add_frames(Locations *found, PyFrameObject *frame, int depth)
{
    while (frame != NULL && depth-- > 0) {
        PyCodeObject *code = PyFrame_GetCode(frame);
        add_location(found, frame, code);
        Py_DECREF(code);
        PyFrameObject *back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
    }
    Py_XDECREF(frame);
}

/* Walk out of library frames from `frame` (consumed) to the first user frame: that frame and up to
 * `user_callers` of its callers while they are user code. Without a user frame within `task_hops`,
 * the library frames walked. As `_origins._site_by_frames`. -1 when a file could not be judged. */
static int
add_site(Locations *found, PyFrameObject *frame)
{
    int library = 1;
    for (int hop = 0; frame != NULL && hop < task_hops && library > 0; hop++) {
        PyCodeObject *code = PyFrame_GetCode(frame);
        library = is_library(code);
        if (library == 0) {
            forget(found);
        }
        if (library >= 0) {
            add_location(found, frame, code);
        }
        Py_DECREF(code);
        PyFrameObject *back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
    }
    for (int i = 0; library == 0 && frame != NULL && i < user_callers; i++) {  /* the user frame's callers */
        PyCodeObject *code = PyFrame_GetCode(frame);
        library = is_library(code);
        if (library == 0) {
            add_location(found, frame, code);
        }
        Py_DECREF(code);
        PyFrameObject *back = i + 1 < user_callers ? PyFrame_GetBack(frame) : NULL;
        Py_DECREF(frame);
        frame = back;
    }
    Py_XDECREF(frame);
    return library < 0 ? -1 : 0;
}

/* The name of a task, as `_cpython.task_name` gives it. */
static PyObject *
name_of_task(PyObject *task)
{
    if (Py_IS_TYPE(task, (PyTypeObject *)c_task)) {
        return PyObject_Vectorcall(c_task_get_name, &task, 1, NULL);
    }
    return PyObject_CallOneArg(task_name, task);
}

/* The ident object made for the thread that asked last: a loop's tasks are all created by one thread. */
static unsigned long last_ident_value;
static PyObject *last_ident;

/* The calling thread's ident as threading knows it (new reference): gevent's monkey-patching makes it
 * the greenlet's. `_thread.get_ident` is read from the module's dict: patched or not, as it is now. */
static PyObject *
current_ident(void)
{
    PyObject *get_ident = PyDict_GetItemWithError(thread_names, str_get_ident);  /* borrowed */
    if (get_ident == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_AttributeError, "_thread.get_ident is gone");
        }
        return NULL;
    }
    if (get_ident != stock_get_ident) {
        return PyObject_CallNoArgs(get_ident);
    }
    unsigned long value = PyThread_get_thread_ident();
    if (last_ident == NULL || value != last_ident_value) {
        PyObject *ident = PyLong_FromUnsignedLong(value);
        if (ident == NULL) {
            return NULL;
        }
        Py_XSETREF(last_ident, ident);
        last_ident_value = value;
    }
    return Py_NewRef(last_ident);
}

/* The task running in `loop` now, or None (new reference); NULL on error. */
static PyObject *
creator_of(PyObject *loop)
{
    if (current_tasks == Py_None) {
        return PyObject_CallOneArg(current_task, loop);
    }
    PyObject *task = PyDict_GetItemWithError(current_tasks, loop);  /* borrowed */
    if (task == NULL) {
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    return Py_NewRef(task);
}

/* Where the slots of _tracking.state (users, labels, threads, tasks) live in it, found by configure():
 * the hot path reads and stores them as their slot descriptors would, without an attribute lookup. */
static Py_ssize_t slot_users, slot_labels, slot_threads, slot_tasks;

static PyObject *
read_slot(Py_ssize_t offset)  /* borrowed; NULL while unset */
{
    return *(PyObject **)((char *)state + offset);
}

static void
store_slot(Py_ssize_t offset, PyObject *value)  /* steals `value` */
{
    Py_XSETREF(*(PyObject **)((char *)state + offset), value);
}

static Py_ssize_t
slot_offset(PyObject *owner, const char *name)
{
    PyObject *descr = PyObject_GetAttrString((PyObject *)Py_TYPE(owner), name);
    Py_ssize_t offset = -1;
    if (descr != NULL && Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type == Py_T_OBJECT_EX && !(member->flags & Py_READONLY)) {
            offset = member->offset;
        }
    }
    Py_XDECREF(descr);
    if (offset < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "configure: state.%s must be a writable slot", name);
    }
    return offset;
}

/* The innermost running check's label, or None (new reference). */
static PyObject *
current_label(void)
{
    PyObject *labels = read_slot(slot_labels);
    PyObject *label = Py_None;
    if (labels != NULL && PyTuple_Check(labels) && PyTuple_GET_SIZE(labels) > 0) {
        label = PyTuple_GET_ITEM(labels, PyTuple_GET_SIZE(labels) - 1);
    }
    return Py_NewRef(label);
}

/* (id(partner), thread, task name, created at, during, code, offset, ...), one tuple per record; NULL on
 * error. Takes no reference. */
static PyObject *
make_record(void *partner, PyObject *thread, PyObject *creator_name, double created, PyObject *label,
            int count, PyCodeObject *const *codes, const int *offsets)
{
    PyObject *record = created >= 0 ? PyTuple_New(5 + 2 * (Py_ssize_t)count) : NULL;
    if (record == NULL) {
        return NULL;
    }
    PyObject *fields[5] = {PyLong_FromVoidPtr(partner), Py_NewRef(thread), Py_NewRef(creator_name),
                           PyFloat_FromDouble(created), Py_NewRef(label)};
    int complete = 1;
    for (int i = 0; i < 5; i++) {
        complete = complete && fields[i] != NULL;
        PyTuple_SET_ITEM(record, i, fields[i]);  /* a tuple's dealloc skips NULL items */
    }
    for (int i = 0; i < count && complete; i++) {
        PyObject *offset = PyLong_FromLong(offsets[i]);
        complete = offset != NULL;
        PyTuple_SET_ITEM(record, 5 + 2 * i, Py_NewRef(codes[i]));
        PyTuple_SET_ITEM(record, 6 + 2 * i, offset);
    }
    if (!complete) {
        Py_DECREF(record);
        return NULL;
    }
    return record;
}

/* entries[address] = record, or the record at `address` dropped when `record` is NULL. */
static void
store(PyObject *entries, void *address, PyObject *record)
{
    PyObject *key = PyLong_FromVoidPtr(address);
    if (key != NULL && record != NULL) {
        PyDict_SetItem(entries, key, record);
    }
    else if (key != NULL) {
        PyDict_DelItem(entries, key);
    }
    Py_XDECREF(key);
    PyErr_Clear();
}

/* Call the table's prune once it has reached `prune_at[0]` records. */
static void
prune_when_due(PyObject *entries, PyObject *prune_at, PyObject *prune)
{
    PyObject *limit = PyList_Check(prune_at) && PyList_GET_SIZE(prune_at) > 0 ? PyList_GET_ITEM(prune_at, 0) : NULL;
    Py_ssize_t at = limit != NULL ? PyLong_AsSsize_t(limit) : -1;
    if (at < 0 || PyDict_GET_SIZE(entries) >= at) {
        PyErr_Clear();
        PyObject *done = PyObject_CallNoArgs(prune);
        Py_XDECREF(done);
    }
    PyErr_Clear();
}

/* Record `obj` now (threads: their records are few, and read as soon as the thread runs). */
static void
put(PyObject *entries, PyObject *prune_at, PyObject *prune, PyObject *obj, PyObject *partner,
    PyObject *thread, PyObject *creator_name, Locations *found)
{
    PyObject *label = current_label();
    PyObject *record = make_record(partner, thread, creator_name, now_seconds(), label, found->count,
                                   found->codes, found->offsets);
    Py_DECREF(label);
    if (record != NULL) {
        store(entries, obj, record);
        Py_DECREF(record);
        prune_when_due(entries, prune_at, prune);
    }
    PyErr_Clear();
}

/* Task records wait here, in C, before they become tuples in the table: most tasks are gone before anyone
 * reads a record, and the next task created at the same address replaces theirs in place. So a record is
 * an entry in a small table keyed by address, filled without allocating anything, and becomes a tuple
 * only when the table fills or before any read (`flush_tasks`, which _origins' table calls first). What a
 * record says is fixed when it is noted; only the tuple is made late. An entry holds no object of the
 * host's: addresses, code objects, the creator's name, the ident and the check's label.
 *
 * A flush allocates and frees, so the program's finalisers may run during it: a task they create is
 * stored at once (its address's waiting entry marked superseded), and a read they make, finding the flush
 * under way, reads the waiting entry itself (`waiting_task_record`). */
#define PENDING_SLOTS 512  /* a power of two */
#define PENDING_LIMIT (PENDING_SLOTS / 2)
#define PENDING_PAIRS 8  /* a site with more locations (no user frame near) is stored at once */
typedef struct {
    void *task;  /* NULL: a free slot */
    void *partner;
    PyObject *thread, *creator_name, *label;  /* NULL in a `forgotten` entry */
    double created;
    int forgotten;  /* asyncio's own shutdown task: drop the record of a dead task at this address */
    int superseded;  /* a newer record at this address was stored directly */
    int count;
    PyCodeObject *codes[PENDING_PAIRS];
    int offsets[PENDING_PAIRS];
} Pending;

static Pending pending[PENDING_SLOTS];
static int pending_used, flushing;

static Pending *
slot_for(void *address)  /* its entry, or the free slot where it would go */
{
    size_t i = (size_t)(((uintptr_t)address >> 4) * 0x9E3779B97F4A7C15ull >> 55) & (PENDING_SLOTS - 1);
    while (pending[i].task != NULL && pending[i].task != address) {
        i = (i + 1) & (PENDING_SLOTS - 1);
    }
    return &pending[i];
}

/* Empty the slot, returning what it held: releasing that may run a finaliser, which must find the slot
 * either whole or free. */
static Pending
take(Pending *entry)
{
    Pending held = *entry;
    entry->task = NULL;
    entry->superseded = 0;
    entry->thread = entry->creator_name = entry->label = NULL;
    entry->count = 0;
    return held;
}

static void
release(Pending *held)
{
    Py_XDECREF(held->thread);
    Py_XDECREF(held->creator_name);
    Py_XDECREF(held->label);
    while (held->count > 0) {
        Py_DECREF(held->codes[--held->count]);
    }
}

static PyObject *
record_of(Pending *entry)
{
    return make_record(entry->partner, entry->thread, entry->creator_name, entry->created, entry->label,
                       entry->count, entry->codes, entry->offsets);
}

/* Store a task's record (or, `forgotten`, drop the one at its address) in the table now. */
static void
store_now(void *task, PyObject *record, int forgotten)
{
    if (forgotten || record != NULL) {
        store(task_entries, task, forgotten ? NULL : record);
    }
    PyErr_Clear();
}

/* Turn the waiting entries into records, then prune when due. */
static void
flush_pending(void)
{
    if (flushing || pending_used == 0 || task_entries == NULL) {
        return;
    }
    flushing = 1;
    for (int i = 0; i < PENDING_SLOTS; i++) {
        Pending *entry = &pending[i];
        if (entry->task != NULL && !entry->superseded) {
            PyObject *record = entry->forgotten ? NULL : record_of(entry);
            if (!entry->superseded) {  /* making it allocated: a finaliser may have stored a newer one */
                store_now(entry->task, record, entry->forgotten);
            }
            Py_XDECREF(record);
        }
    }
    for (int i = 0; i < PENDING_SLOTS; i++) {  /* only now: a finaliser run above may read any entry */
        if (pending[i].task != NULL) {
            Pending held = take(&pending[i]);
            release(&held);
        }
    }
    pending_used = 0;
    flushing = 0;
    prune_when_due(task_entries, task_prune_at, task_prune);
}

/* Note the record of `task` (or, `forgotten`, the dropping of a dead task's record at its address),
 * replacing the entry of a dead task at the same address; the locations move into the entry. */
static void
pend(PyObject *task, PyObject *coro, PyObject *thread, PyObject *creator_name, Locations *found,
     int forgotten)
{
    double created = task_created_now();
    if (created < 0 && !forgotten) {
        return;
    }
    if (!flushing && pending_used >= PENDING_LIMIT) {
        flush_pending();
    }
    Pending *entry = slot_for(task);
    int replaces = entry->task != NULL;  /* the entry of a dead task at this address */
    if (flushing || found->count > PENDING_PAIRS || (!replaces && pending_used >= PENDING_LIMIT)) {
        /* made by a finaliser during a flush, too deep a site, or still full: stored at once */
        if (replaces) {
            entry->superseded = 1;
        }
        PyObject *label = current_label();
        PyObject *record = forgotten ? NULL : make_record(coro, thread, creator_name, created, label,
                                                          found->count, found->codes, found->offsets);
        store_now(task, record, forgotten);
        Py_XDECREF(record);
        Py_DECREF(label);
        return;
    }
    Pending old = replaces ? take(entry) : (Pending){.task = NULL};
    if (!replaces) {
        pending_used++;
    }
    entry->partner = coro;
    entry->forgotten = forgotten;
    entry->created = created;
    entry->thread = forgotten ? NULL : Py_NewRef(thread);
    entry->creator_name = forgotten ? NULL : Py_NewRef(creator_name);
    entry->label = forgotten ? NULL : current_label();
    entry->count = found->count;
    memcpy(entry->codes, found->codes, (size_t)found->count * sizeof(PyCodeObject *));
    memcpy(entry->offsets, found->offsets, (size_t)found->count * sizeof(int));
    found->count = 0;
    entry->task = task;  /* last: the entry is whole */
    if (replaces) {
        release(&old);
    }
}

/* A coroutine's code (new reference), read from the object: its `cr_code` attribute would raise the
 * audit event "object.__getattr__", running the program's audit hooks for every task created. */
static PyObject *
coroutine_code(PyObject *coro)
{
#if PY_VERSION_HEX >= 0x030C0000
    return (PyObject *)PyGen_GetCode((PyGenObject *)coro);
#else
    return Py_NewRef(((PyCoroObject *)coro)->cr_code);
#endif
}

/* Record where `task` was just created by `loop.create_task(coro)`; `skip`: Python frames between here
 * and the caller of create_task. Returns the creating task or None (new reference); never fails. */
static PyObject *
note_task(PyObject *loop, PyObject *coro, PyObject *task, int skip)
{
    if (PyCoro_CheckExact(coro)) {
        PyObject *code = coroutine_code(coro);
        int shutting = 0;
        for (Py_ssize_t i = 0; !shutting && i < PyTuple_GET_SIZE(housekeeping); i++) {
            shutting = code == PyTuple_GET_ITEM(housekeeping, i);  /* identity: a code's hash is costly */
        }
        Py_DECREF(code);
        if (shutting) {  /* a loop closing: two per test, always awaited by the runner */
            Locations none;
            none.count = 0;
            pend(task, coro, NULL, NULL, &none, 1);
            Py_RETURN_NONE;
        }
    }
    PyObject *creator = creator_of(loop);
    PyObject *creator_name = NULL, *thread = NULL, *mark = NULL;
    Locations found;
    found.count = 0;  /* only the count: the arrays are written before they are read */
    if (creator == NULL) {
        goto done;
    }
    creator_name = creator == Py_None ? Py_NewRef(Py_None) : name_of_task(creator);
    if (creator_name == NULL || add_site(&found, caller_frame(skip)) < 0) {
        goto done;
    }
    thread = current_ident();
    mark = PyIter_Next(sequence);
    if (thread != NULL && mark != NULL) {
        store_slot(slot_tasks, Py_NewRef(mark));
        pend(task, coro, thread, creator_name, &found, 0);
    }
done:
    PyErr_Clear();
    forget(&found);
    Py_XDECREF(creator_name);
    Py_XDECREF(thread);
    Py_XDECREF(mark);
    return creator != NULL ? creator : Py_NewRef(Py_None);
}

/* The calling thread's name read statically (as `_cpython.current_thread_name`), else its ident. */
static PyObject *
creating_thread(void)
{
    PyObject *ident = current_ident();
    if (ident == NULL) {
        return NULL;
    }
    PyObject *thread = PyDict_GetItemWithError(active, ident);  /* borrowed */
    if (thread == NULL) {
        PyErr_Clear();
        return ident;
    }
    Py_INCREF(thread);
    PyObject *kind = (PyObject *)Py_TYPE(thread);
    PyObject *readable = kind == last_kind ? last_readable : PyDict_GetItemWithError(readable_name, kind);
    int ok = readable != NULL ? readable == Py_True : -1;
    if (readable != NULL) {  /* the same class as last time (most threads start from one): no lookup */
        last_kind = kind;
        last_readable = readable;
    }
    if (ok < 0 && !PyErr_Occurred()) {
        PyObject *verdict = PyObject_CallOneArg(name_judge, kind);
        ok = verdict != NULL ? PyObject_IsTrue(verdict) : -1;
        Py_XDECREF(verdict);
        if (ok >= 0 && PyDict_GET_SIZE(readable_name) < 4096) {
            PyDict_SetItem(readable_name, kind, ok ? Py_True : Py_False);
        }
    }
    PyObject *name = ok > 0 ? PyObject_GenericGetAttr(thread, str_name) : NULL;
    Py_DECREF(thread);
    PyErr_Clear();
    if (name != NULL && PyUnicode_Check(name) && PyUnicode_GET_LENGTH(name) > 0) {
        Py_DECREF(ident);
        return name;
    }
    Py_XDECREF(name);
    return ident;
}

/* Record where `thread` is being started: the creator, and `thread_depth` frames from the `skip`-th
 * Python frame up (as `_origins.capture`). Never fails. */
static void
note_thread(PyObject *thread, int skip)
{
    PyObject *creator = NULL, *creator_name = NULL, *by = NULL;
    Locations found;
    found.count = 0;  /* only the count: the arrays are written before they are read */
    PyObject *loop = PyObject_CallNoArgs(running_loop);
    if (loop == NULL) {
        goto done;
    }
    creator = loop == Py_None ? Py_NewRef(Py_None) : creator_of(loop);
    if (creator == NULL) {
        goto done;
    }
    creator_name = creator == Py_None ? Py_NewRef(Py_None) : name_of_task(creator);
    if (creator_name == NULL) {
        goto done;
    }
    add_frames(&found, caller_frame(skip), thread_depth);
    by = creating_thread();
    if (by != NULL) {
        put(thread_entries, thread_prune_at, thread_prune, thread, (PyObject *)Py_TYPE(thread), by,
            creator_name, &found);
    }
done:
    PyErr_Clear();
    forget(&found);
    Py_XDECREF(loop);
    Py_XDECREF(creator);
    Py_XDECREF(creator_name);
    Py_XDECREF(by);
}

/* Whether tracking is on: a wrapper left behind by someone else's later patch records nothing. */
static int
tracking_on(void)
{
    if (state == NULL) {
        return 0;
    }
    PyObject *users = read_slot(slot_users);
    return users != NULL && PyLong_CheckExact(users) && PyObject_IsTrue(users) > 0;
}

/* Move one creation mark (state.threads or state.tasks) to the next number, after the unit registered. */
static void
advance(Py_ssize_t slot)
{
    PyObject *mark = PyIter_Next(sequence);
    if (mark == NULL) {
        PyErr_Clear();
        return;
    }
    store_slot(slot, mark);
}

/* A tracked method: Thread.start or a loop class's create_task, called through as before, recorded after
 * (create_task) or before (start, whose thread may be gone after). A method descriptor written in C, so
 * the call passes no Python frame of ours and the arguments are passed on as they came. */
typedef struct {
    PyObject_HEAD
    PyObject *original;
    PyObject *debug_hook;   /* create_task on asyncio's loops, or None: hook(task) in debug mode */
    PyObject *thread_hook;  /* create_task on other loops (uvloop): hook(loop) when a task of it created it */
    int start;              /* Thread.start, else create_task */
    vectorcallfunc vectorcall;
} Tracked;

static PyObject *
tracked_call(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Tracked *self = (Tracked *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    int on = nargs >= (self->start ? 1 : 2) && tracking_on();
    if (self->start && on) {
        note_thread(args[0], 0);
    }
    PyObject *result = PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    if (result == NULL || !on) {
        return result;  /* the host's own error, untouched */
    }
    if (self->start) {
        advance(slot_threads);
        return result;
    }
    PyObject *creator = note_task(args[0], args[1], result, 0);
    PyObject *done = NULL;
    if (self->debug_hook != Py_None) {
        PyObject *debug = PyObject_GetAttr(args[0], str_debug);
        if (debug != NULL && PyObject_IsTrue(debug) > 0) {
            done = PyObject_CallOneArg(self->debug_hook, result);
        }
        Py_XDECREF(debug);
    }
    else if (self->thread_hook != Py_None && creator != Py_None) {
        done = PyObject_CallOneArg(self->thread_hook, args[0]);
    }
    Py_XDECREF(done);
    Py_DECREF(creator);
    PyErr_Clear();
    return result;
}

static PyObject *
tracked_get(PyObject *self, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self);
    }
    return PyMethod_New(self, obj);
}

static PyObject *
tracked_repr(PyObject *self)
{
    return PyUnicode_FromFormat("<looseends tracked %R>", ((Tracked *)self)->original);
}

/* Anything else (__name__, __qualname__, __module__, ...) is the original's, as for a functools.wraps. */
static PyObject *
tracked_getattro(PyObject *self, PyObject *name)
{
    PyObject *found = PyObject_GenericGetAttr(self, name);
    if (found == NULL && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        found = PyObject_GetAttr(((Tracked *)self)->original, name);
    }
    return found;
}

static int
tracked_traverse(PyObject *self, visitproc visit, void *arg)
{
    Tracked *tracked = (Tracked *)self;
    Py_VISIT(tracked->original);
    Py_VISIT(tracked->debug_hook);
    Py_VISIT(tracked->thread_hook);
    return 0;
}

static int
tracked_clear(PyObject *self)
{
    Tracked *tracked = (Tracked *)self;
    Py_CLEAR(tracked->original);
    Py_CLEAR(tracked->debug_hook);
    Py_CLEAR(tracked->thread_hook);
    return 0;
}

static void
tracked_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    tracked_clear(self);
    PyObject_GC_Del(self);
}

static PyMemberDef tracked_members[] = {
    {"__wrapped__", Py_T_OBJECT_EX, offsetof(Tracked, original), Py_READONLY, "the method called through"},
    {NULL},
};

static PyTypeObject TrackedType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "looseends.sources._speedups.Tracked",
    .tp_basicsize = sizeof(Tracked),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
                | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "A tracked Thread.start or create_task (see _origins.py).",
    .tp_vectorcall_offset = offsetof(Tracked, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = tracked_get,
    .tp_repr = tracked_repr,
    .tp_getattro = tracked_getattro,
    .tp_traverse = tracked_traverse,
    .tp_clear = tracked_clear,
    .tp_dealloc = tracked_dealloc,
    .tp_members = tracked_members,
};

static PyObject *
new_tracked(PyObject *original, int start, PyObject *debug_hook, PyObject *thread_hook)
{
    Tracked *self = PyObject_GC_New(Tracked, &TrackedType);
    if (self == NULL) {
        return NULL;
    }
    self->original = Py_NewRef(original);
    self->debug_hook = Py_NewRef(debug_hook);
    self->thread_hook = Py_NewRef(thread_hook);
    self->start = start;
    self->vectorcall = tracked_call;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyObject *
tracked_start(PyObject *module, PyObject *original)
{
    return new_tracked(original, 1, Py_None, Py_None);
}

static PyObject *
tracked_create_task(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"original", "debug_hook", "thread_hook", NULL};
    PyObject *original, *debug_hook = Py_None, *thread_hook = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$OO", names, &original, &debug_hook, &thread_hook)) {
        return NULL;
    }
    if (debug_hook != Py_None && thread_hook != Py_None) {
        PyErr_SetString(PyExc_TypeError, "tracked_create_task: give at most one of debug_hook and thread_hook");
        return NULL;
    }
    return new_tracked(original, 0, debug_hook, thread_hook);
}

static PyObject *
configure(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {
        "state", "sequence", "running_loop", "current_task", "current_tasks", "c_task", "task_name",
        "housekeeping", "judge", "active", "thread_module", "name_judge", "task_table", "thread_table",
        "task_hops", "user_callers", "thread_depth", NULL,
    };
    PyObject *new[12];
    PyObject *task_table, *thread_table;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$OOOOOOOOOOOOOOiii", names, &new[0], &new[1], &new[2],
                                     &new[3], &new[4], &new[5], &new[6], &new[7], &new[8], &new[9],
                                     &new[10], &new[11], &task_table, &thread_table, &task_hops, &user_callers,
                                     &thread_depth)) {
        return NULL;
    }
    if (task_hops < 0 || user_callers < 0 || thread_depth < 0 || task_hops + user_callers > MAX_PAIRS
        || thread_depth > MAX_PAIRS) {
        PyErr_SetString(PyExc_ValueError, "configure: depths must be small and positive");
        return NULL;
    }
    if (!PyIter_Check(new[1]) || (new[4] != Py_None && !PyDict_Check(new[4])) || !PyType_Check(new[5]) || !PyTuple_Check(new[7])
        || !PyDict_Check(new[9]) || !PyModule_Check(new[10])) {
        PyErr_SetString(PyExc_TypeError,
                        "configure: sequence must be an iterator, current_tasks a dict or None, c_task a type, housekeeping a tuple, "
                        "active a dict, thread_module a module");
        return NULL;
    }
    flush_pending();  /* into the table the waiting records were made for */
    PyObject *tables[2] = {task_table, thread_table};
    PyObject *parts[6];
    static const char *fields[] = {"entries", "prune_at", "prune"};
    for (int t = 0; t < 2; t++) {
        for (int f = 0; f < 3; f++) {
            parts[t * 3 + f] = PyObject_GetAttrString(tables[t], fields[f]);
        }
    }
    for (int i = 0; i < 6; i++) {
        if (parts[i] == NULL || (i % 3 == 0 && !PyDict_Check(parts[i]))) {
            for (int j = 0; j < 6; j++) {
                Py_XDECREF(parts[j]);
            }
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "configure: a table's entries must be a dict");
            }
            return NULL;
        }
    }
    static const char *slot_names[4] = {"users", "labels", "threads", "tasks"};
    Py_ssize_t offsets[4] = {-1, -1, -1, -1};
    for (int i = 0; i < 4 && (i == 0 || offsets[i - 1] >= 0); i++) {
        offsets[i] = slot_offset(new[0], slot_names[i]);
    }
    if (offsets[3] < 0) {
        for (int j = 0; j < 6; j++) {
            Py_XDECREF(parts[j]);
        }
        return NULL;
    }
    slot_users = offsets[0];
    slot_labels = offsets[1];
    slot_threads = offsets[2];
    slot_tasks = offsets[3];
    PyObject **slots[] = {&state, &sequence, &running_loop, &current_task, &current_tasks, &c_task,
                          &task_name, &housekeeping, &judge, &active, &thread_module, &name_judge};
    for (int i = 0; i < 12; i++) {
        Py_XSETREF(*slots[i], Py_NewRef(new[i]));
    }
    PyObject **table_slots[] = {&task_entries, &task_prune_at, &task_prune,
                                &thread_entries, &thread_prune_at, &thread_prune};
    for (int i = 0; i < 6; i++) {
        Py_XSETREF(*table_slots[i], parts[i]);
    }
    Py_XSETREF(c_task_get_name, PyObject_GetAttr(c_task, str_get_name));
    if (c_task_get_name == NULL) {
        return NULL;
    }
    Py_XSETREF(thread_names, Py_NewRef(PyModule_GetDict(thread_module)));
    Py_XSETREF(stock_get_ident, PyObject_GetAttr(thread_module, str_get_ident));
    if (stock_get_ident == NULL || !PyCFunction_Check(stock_get_ident)
        || PyCFunction_GET_SELF(stock_get_ident) != thread_module) {  /* patched already: always call */
        PyErr_Clear();
        Py_XSETREF(stock_get_ident, Py_NewRef(Py_None));
    }
    PyDict_Clear(verdicts);
    forget_recent_files();
    PyDict_Clear(readable_name);
    last_kind = last_readable = NULL;
    Py_RETURN_NONE;
}

/* One of a frame's variables, or `default`. Never `frame.f_locals`: before 3.13 that leaves a dict of every
 * variable on the frame, which keeps what the program has since deleted alive until the frame ends. 3.12
 * has PyFrame_GetVar for this; 3.11 has no such call, so its frame layout (Include/internal/pycore_frame.h)
 * is read here, checked against the frame before any variable is read, all under the GIL: the frame cannot
 * move or end between the check and the read. */
#if PY_VERSION_HEX < 0x030C0000
typedef struct {
    PyObject *f_func, *f_globals, *f_builtins, *f_locals;
    PyCodeObject *f_code;
    PyFrameObject *frame_obj;
    void *previous, *prev_instr;
    int stacktop;
    char is_entry, owner;
    PyObject *localsplus[1];
} frame_data_311;

typedef struct {
    PyObject_HEAD
    PyFrameObject *f_back;
    frame_data_311 *f_frame;
} frame_object_311;

#define KIND_CELL 0x40 /* CO_FAST_CELL */
#define KIND_FREE 0x80 /* CO_FAST_FREE */

static PyObject *
read_variable(PyFrameObject *frame, PyObject *name, PyObject *fallback)
{
    frame_data_311 *data = ((frame_object_311 *)frame)->f_frame;
    PyCodeObject *code = PyFrame_GetCode(frame);
    int same = data != NULL && data->frame_obj == frame && data->f_code == code;
    Py_DECREF(code); /* the frame keeps it */
    if (!same || !PyTuple_Check(code->co_localsplusnames) || !PyBytes_Check(code->co_localspluskinds)) {
        return Py_NewRef(fallback); /* not the layout this was written for: claim nothing */
    }
    Py_ssize_t count = PyTuple_GET_SIZE(code->co_localsplusnames);
    for (Py_ssize_t i = 0; i < count && i < PyBytes_GET_SIZE(code->co_localspluskinds); i++) {
        PyObject *each = PyTuple_GET_ITEM(code->co_localsplusnames, i);
        if (each != name && (!PyUnicode_Check(each) || PyUnicode_Compare(each, name) != 0)) {
            continue;
        }
        PyObject *value = data->localsplus[i];
        unsigned char kind = (unsigned char)PyBytes_AS_STRING(code->co_localspluskinds)[i];
        if (value != NULL && (kind & (KIND_CELL | KIND_FREE)) && PyCell_Check(value)) {
            value = PyCell_GET(value);
        }
        return Py_NewRef(value != NULL ? value : fallback);
    }
    return Py_NewRef(fallback);
}
#else
static PyObject *
read_variable(PyFrameObject *frame, PyObject *name, PyObject *fallback)
{
    PyObject *value = PyFrame_GetVar(frame, name);
    if (value == NULL) {
        PyErr_Clear(); /* unbound, or no such variable */
        return Py_NewRef(fallback);
    }
    return value;
}
#endif

static PyObject *
frame_variable(PyObject *self, PyObject *args)
{
    PyObject *frame, *name, *fallback;
    if (!PyArg_ParseTuple(args, "O!UO:frame_variable", &PyFrame_Type, &frame, &name, &fallback)) {
        return NULL;
    }
    return read_variable((PyFrameObject *)frame, name, fallback);
}

/* The time a check begins, made known to task records in the same step (under the GIL): see
 * `task_created_now`. */
static PyObject *
check_began(PyObject *module, PyObject *unused)
{
    double now = now_seconds();
    if (now < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (now > checks_began) {
        checks_began = now;
    }
    return PyFloat_FromDouble(now);
}

static PyObject *
flush_tasks(PyObject *module, PyObject *unused)
{
    flush_pending();
    return PyBool_FromLong(!flushing);
}

static PyObject *
waiting_task_record(PyObject *module, PyObject *address)
{
    void *task = PyLong_AsVoidPtr(address);
    if (task == NULL && PyErr_Occurred()) {
        return NULL;
    }
    Pending *entry = slot_for(task);
    if (entry->task == NULL || entry->superseded || entry->forgotten) {
        Py_RETURN_NONE;
    }
    return record_of(entry);  /* a waiting entry's time is valid: its tuple fails only with an error set */
}

/* del entries[key] if it is still `record`, in one step under the GIL: a table pruned in one thread while
 * another puts a new object's record at the same address must keep the new record. */
static PyObject *
forget_if_same(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyDict_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "forget_if_same(entries: dict, key, record)");
        return NULL;
    }
    PyObject *now = PyDict_GetItemWithError(args[0], args[1]);  /* borrowed */
    if (now == NULL && PyErr_Occurred()) {
        return NULL;
    }
    if (now != NULL && now == args[2] && PyDict_DelItem(args[0], args[1]) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The objects the collector tracks whose type is `kind` or a subclass of it, chosen in C: the list of all
 * objects is never held while another thread could run. An object another thread is still building (a
 * tuple that `tuple(generator)` fills, then resizes) must not have its reference count raised meanwhile:
 * the resize would fail, and the program's call raise SystemError. */
static PyObject *
tracked_instances(PyObject *module, PyObject *kind)
{
    if (!PyType_Check(kind)) {
        PyErr_SetString(PyExc_TypeError, "tracked_instances: kind must be a type");
        return NULL;
    }
    PyObject *found = PyList_New(0);
    PyObject *all = found != NULL ? PyObject_CallNoArgs(gc_get_objects) : NULL;
    if (all == NULL || !PyList_Check(all)) {
        Py_XDECREF(all);
        Py_XDECREF(found);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(all); i++) {
        PyObject *obj = PyList_GET_ITEM(all, i);
        if (PyType_IsSubtype(Py_TYPE(obj), (PyTypeObject *)kind) && PyList_Append(found, obj) < 0) {
            Py_CLEAR(found);
            break;
        }
    }
    Py_DECREF(all);
    return found;
}

/* ---- The proof's heap accounting (for `analysis/unseen.py`), done in one call that runs no Python code:
 * no other thread runs while it holds what the collector lists, and it keeps no reference to any of it
 * when it returns (only numbers). See `heap_accounts`. */

/* Addresses mapped to a number, open addressing: the sets of the accounting without a Python object per
 * entry. */
typedef struct {
    void **keys;
    Py_ssize_t *values;
    size_t mask;
    size_t used;
} AddressMap;

static int
address_map_init(AddressMap *map, size_t expected)
{
    size_t size = 16;
    while (size < 2 * expected + 2) {
        size <<= 1;
    }
    map->keys = PyMem_Calloc(size, sizeof(void *));
    map->values = PyMem_Calloc(size, sizeof(Py_ssize_t));
    map->mask = size - 1;
    map->used = 0;
    return map->keys != NULL && map->values != NULL ? 0 : -1;
}

static void
address_map_free(AddressMap *map)
{
    PyMem_Free(map->keys);
    PyMem_Free(map->values);
    map->keys = NULL;
    map->values = NULL;
}

static size_t
address_slot(const AddressMap *map, void *key)
{
    size_t slot = (size_t)(((uintptr_t)key >> 4) * (uintptr_t)0x9E3779B97F4A7C15ULL >> 7) & map->mask;
    while (map->keys[slot] != NULL && map->keys[slot] != key) {
        slot = (slot + 1) & map->mask;
    }
    return slot;
}

/* The value at `key`, or NULL when absent. */
static Py_ssize_t *
address_find(const AddressMap *map, void *key)
{
    size_t slot = address_slot(map, key);
    return map->keys[slot] == key ? &map->values[slot] : NULL;
}

/* Add `key` with `value` unless present: 1 added, 0 present, -1 out of memory. Grows at half full. */
static int
address_add(AddressMap *map, void *key, Py_ssize_t value)
{
    if (2 * (map->used + 1) > map->mask + 1) {
        AddressMap bigger;
        if (address_map_init(&bigger, map->used + 1) < 0) {
            address_map_free(&bigger);
            return -1;
        }
        for (size_t i = 0; i <= map->mask; i++) {
            if (map->keys[i] != NULL) {
                size_t slot = address_slot(&bigger, map->keys[i]);
                bigger.keys[slot] = map->keys[i];
                bigger.values[slot] = map->values[i];
            }
        }
        bigger.used = map->used;
        address_map_free(map);
        *map = bigger;
    }
    size_t slot = address_slot(map, key);
    if (map->keys[slot] == key) {
        return 0;
    }
    map->keys[slot] = key;
    map->values[slot] = value;
    map->used++;
    return 1;
}

/* Every int of a set of ids, added to `map`. */
static int
add_ids(AddressMap *map, PyObject *ids)
{
    PyObject *iterator = PyObject_GetIter(ids);
    if (iterator == NULL) {
        return -1;
    }
    PyObject *id;
    while ((id = PyIter_Next(iterator)) != NULL) {
        void *address = PyLong_AsVoidPtr(id);
        Py_DECREF(id);
        if ((address == NULL && PyErr_Occurred()) || (address != NULL && address_add(map, address, 0) < 0)) {
            Py_DECREF(iterator);
            return PyErr_Occurred() ? -1 : (PyErr_NoMemory(), -1);
        }
    }
    Py_DECREF(iterator);
    return PyErr_Occurred() ? -1 : 0;
}

/* A reference from an unreached object (by its index) to `referent`. */
typedef struct {
    void *referent;
    Py_ssize_t parent;
} Edge;

typedef struct {
    Edge *edges;
    Py_ssize_t count, capacity, parent;
    int failed;
} Edges;

static int
visit_edge(PyObject *referent, void *arg)
{
    Edges *found = arg;
    if (found->count == found->capacity) {
        Py_ssize_t capacity = found->capacity ? 2 * found->capacity : 1024;
        Edge *grown = PyMem_Realloc(found->edges, (size_t)capacity * sizeof(Edge));
        if (grown == NULL) {
            found->failed = 1;
            return 1;  /* stops the traversal */
        }
        found->edges = grown;
        found->capacity = capacity;
    }
    found->edges[found->count++] = (Edge){referent, found->parent};
    return 0;
}

static int
by_referent(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const Edge *)a)->referent, y = (uintptr_t)((const Edge *)b)->referent;
    return x < y ? -1 : x > y;
}

/* The first edge to `referent` in the sorted edges. */
static Py_ssize_t
first_edge_to(const Edges *found, void *referent)
{
    Py_ssize_t low = 0, high = found->count;
    while (low < high) {
        Py_ssize_t middle = low + (high - low) / 2;
        if ((uintptr_t)found->edges[middle].referent < (uintptr_t)referent) {
            low = middle + 1;
        }
        else {
            high = middle;
        }
    }
    return low;
}

static int
visit_count(PyObject *referent, void *arg)
{
    Py_ssize_t *count = address_find(arg, referent);
    if (count != NULL) {
        ++*count;
    }
    return 0;
}

enum { HEAP_OTHER, HEAP_FRAME, HEAP_CELL, HEAP_FUNCTION, HEAP_METHOD, HEAP_EXIT_METHOD };

/* (id, reference count, references from tracked objects and the listing, kind, link, type name) for one
 * object: the kind and link say what a running frame may hold of it (see `unseen.py`). */
static PyObject *
heap_entry(PyObject *obj, Py_ssize_t internal)
{
    int kind = HEAP_OTHER;
    void *link = NULL;
    if (PyFrame_Check(obj)) {
        kind = HEAP_FRAME;
    }
    else if (PyCell_Check(obj)) {
        kind = HEAP_CELL;
        link = PyCell_GET(obj);
    }
    else if (PyFunction_Check(obj)) {
        kind = HEAP_FUNCTION;
        link = PyFunction_GET_CODE(obj);
    }
    else if (PyMethod_Check(obj) && PyFunction_Check(PyMethod_GET_FUNCTION(obj))) {
        PyFunctionObject *function = (PyFunctionObject *)PyMethod_GET_FUNCTION(obj);
        int exits = PyUnicode_Check(function->func_name)
                    && (PyUnicode_CompareWithASCIIString(function->func_name, "__exit__") == 0
                        || PyUnicode_CompareWithASCIIString(function->func_name, "__aexit__") == 0);
        kind = exits ? HEAP_EXIT_METHOD : HEAP_METHOD;
        link = function->func_code;
    }
    const char *name = Py_TYPE(obj)->tp_name;
    const char *dot = strrchr(name, '.');
    return Py_BuildValue("(NnniNs)", PyLong_FromVoidPtr(obj), Py_REFCNT(obj), internal, kind,
                         PyLong_FromVoidPtr(link), dot != NULL ? dot + 1 : name);
}

typedef struct {
    PyObject *all;           /* gc.get_objects(): every object is held once more while it lives */
    PyObject **unreached;    /* borrowed from `all` */
    Py_ssize_t unreached_count;
    Edges edges;
    AddressMap leading;      /* every leading object -> references to it from tracked objects */
    PyObject ***chains;      /* per target: its leading objects (borrowed), the target first */
    Py_ssize_t *chain_lengths;
    Py_ssize_t targets;
} Accounting;

static void
accounting_free(Accounting *work)
{
    for (Py_ssize_t i = 0; work->chains != NULL && i < work->targets; i++) {
        PyMem_Free(work->chains[i]);
    }
    PyMem_Free(work->chains);
    PyMem_Free(work->chain_lengths);
    PyMem_Free(work->unreached);
    PyMem_Free(work->edges.edges);
    address_map_free(&work->leading);
    Py_CLEAR(work->all);  /* last: nothing borrowed from it is read after */
}

/* The unreached objects from which `target` can be reached (itself first), into work->chains[index]. */
static int
chain_to(Accounting *work, Py_ssize_t index, PyObject *target)
{
    AddressMap seen;
    Py_ssize_t length = 0, capacity = 16, next = 0;
    PyObject **chain = PyMem_Malloc((size_t)capacity * sizeof(PyObject *));
    if (chain == NULL || address_map_init(&seen, 64) < 0 || address_add(&seen, target, 0) < 0) {
        PyMem_Free(chain);
        address_map_free(&seen);
        return -1;
    }
    chain[length++] = target;
    int failed = 0;
    while (next < length && !failed) {  /* the chain is its own frontier */
        PyObject *obj = chain[next++];
        for (Py_ssize_t e = first_edge_to(&work->edges, obj);
             e < work->edges.count && work->edges.edges[e].referent == (void *)obj && !failed; e++) {
            PyObject *parent = work->unreached[work->edges.edges[e].parent];
            int added = address_add(&seen, parent, 0);
            if (added > 0 && length == capacity) {
                PyObject **grown = PyMem_Realloc(chain, (size_t)(capacity *= 2) * sizeof(PyObject *));
                failed = grown == NULL;
                chain = grown != NULL ? grown : chain;
            }
            failed = failed || added < 0;
            if (added > 0 && !failed) {
                chain[length++] = parent;
            }
        }
    }
    address_map_free(&seen);
    for (Py_ssize_t i = 0; i < length && !failed; i++) {
        failed = address_add(&work->leading, chain[i], 0) < 0;
    }
    work->chains[index] = chain;
    work->chain_lengths[index] = length;
    return failed ? -1 : 0;
}

static int
account(Accounting *work, PyObject *targets, PyObject *reached, PyObject *ours)
{
    AddressMap skip;  /* what the walk reached, the checker's own, and these arguments (a set of a
                       * million ids would otherwise be walked, its every int an edge) */
    if (address_map_init(&skip, (size_t)PySet_GET_SIZE(reached) + (size_t)PySet_GET_SIZE(ours) + 3) < 0
        || add_ids(&skip, reached) < 0 || add_ids(&skip, ours) < 0 || address_add(&skip, targets, 0) < 0
        || address_add(&skip, reached, 0) < 0 || address_add(&skip, ours, 0) < 0) {
        address_map_free(&skip);
        return -1;
    }
    Py_ssize_t total = PyList_GET_SIZE(work->all);
    work->unreached = PyMem_Malloc((size_t)(total + 1) * sizeof(PyObject *));
    work->chains = PyMem_Calloc((size_t)work->targets + 1, sizeof(PyObject **));
    work->chain_lengths = PyMem_Calloc((size_t)work->targets + 1, sizeof(Py_ssize_t));
    if (work->unreached == NULL || work->chains == NULL || work->chain_lengths == NULL
        || address_map_init(&work->leading, 256) < 0) {
        address_map_free(&skip);
        return -1;
    }
    for (Py_ssize_t i = 0; i < total; i++) {
        PyObject *obj = PyList_GET_ITEM(work->all, i);
        if (address_find(&skip, obj) == NULL) {
            work->unreached[work->unreached_count++] = obj;
        }
    }
    address_map_free(&skip);
    for (Py_ssize_t i = 0; i < work->unreached_count && !work->edges.failed; i++) {
        traverseproc traverse = Py_TYPE(work->unreached[i])->tp_traverse;
        work->edges.parent = i;
        if (traverse != NULL) {
            traverse(work->unreached[i], visit_edge, &work->edges);
        }
    }
    if (work->edges.failed) {
        return -1;
    }
    qsort(work->edges.edges, (size_t)work->edges.count, sizeof(Edge), by_referent);
    for (Py_ssize_t t = 0; t < work->targets; t++) {
        if (chain_to(work, t, PyList_GET_ITEM(targets, t)) < 0) {
            return -1;
        }
    }
    PyMem_Free(work->edges.edges);  /* the largest part, not needed from here */
    work->edges.edges = NULL;
    for (Py_ssize_t i = 0; i < total; i++) {  /* references from every tracked object, ours included */
        PyObject *obj = PyList_GET_ITEM(work->all, i);
        traverseproc traverse = Py_TYPE(obj)->tp_traverse;
        if (traverse != NULL) {
            traverse(obj, visit_count, &work->leading);
        }
    }
    /* and from the listing itself, which holds each object it lists (tracked, not frozen) once more */
    Py_TYPE(work->all)->tp_traverse(work->all, visit_count, &work->leading);
    return 0;
}

/* For each target, the accounts of the unreached objects leading to it (see `unseen.py`); None past
 * `limit` tracked objects. The collector is held off and no Python code runs until the numbers are
 * made: the list of everything is never held while another thread could run (an object it is still
 * building, such as a tuple `tuple(generator)` fills, must not have its count raised when it resizes). */
static PyObject *
heap_accounts(PyObject *module, PyObject *args)
{
    PyObject *targets, *reached, *ours;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "O!O!O!n", &PyList_Type, &targets, &PySet_Type, &reached, &PySet_Type, &ours,
                          &limit)) {
        return NULL;
    }
    int collecting = PyGC_Disable();
    Accounting work = {.targets = PyList_GET_SIZE(targets)};
    PyObject *result = NULL;
    work.all = PyObject_CallNoArgs(gc_get_objects);
    if (work.all == NULL || !PyList_Check(work.all)) {
        goto done;
    }
    if (PyList_GET_SIZE(work.all) > limit) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (account(&work, targets, reached, ours) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_NoMemory();
        }
        goto done;
    }
    result = PyList_New(work.targets);
    for (Py_ssize_t t = 0; result != NULL && t < work.targets; t++) {
        PyObject *entries = PyTuple_New(work.chain_lengths[t]);
        for (Py_ssize_t i = 0; entries != NULL && i < work.chain_lengths[t]; i++) {
            PyObject *obj = work.chains[t][i];
            PyObject *entry = heap_entry(obj, *address_find(&work.leading, obj));
            if (entry == NULL) {
                Py_CLEAR(entries);
                break;
            }
            PyTuple_SET_ITEM(entries, i, entry);
        }
        if (entries == NULL) {
            Py_CLEAR(result);
            break;
        }
        PyList_SET_ITEM(result, t, entries);
    }
done:
    accounting_free(&work);
    if (collecting) {
        PyGC_Enable();
    }
    return result;
}

static PyMethodDef methods[] = {
    {"tracked_start", tracked_start, METH_O,
     "tracked_start(Thread.start) -> the same method, recording where each thread is started."},
    {"tracked_create_task", (PyCFunction)(void (*)(void))tracked_create_task, METH_VARARGS | METH_KEYWORDS,
     "tracked_create_task(create_task, *, debug_hook=None, thread_hook=None) -> the same method, recording "
     "where each task is created."},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "configure(**what_the_records_read) -> None: called once by looseends.sources._origins."},
    {"check_began", check_began, METH_NOARGS,
     "check_began() -> time.monotonic(), made the earliest creation time of any task made from now on."},
    {"flush_tasks", flush_tasks, METH_NOARGS,
     "flush_tasks() -> bool: make the task records still waiting in C, before the task table is read; False "
     "when a flush was already under way (a finaliser run by it is reading)."},
    {"waiting_task_record", waiting_task_record, METH_O,
     "waiting_task_record(id(task)) -> the record still waiting in C for the task at that address, or None."},
    {"forget_if_same", (PyCFunction)(void (*)(void))forget_if_same, METH_FASTCALL,
     "forget_if_same(entries, key, record) -> None: del entries[key] if it is still record, in one step."},
    {"tracked_instances", tracked_instances, METH_O,
     "tracked_instances(kind) -> the objects the collector tracks that are instances of kind (by type), "
     "chosen without holding the others while another thread runs."},
    {"heap_accounts", heap_accounts, METH_VARARGS,
     "heap_accounts(targets, reached_ids, our_ids, limit) -> per target, (id, count, internal, kind, link, "
     "type name) of each unreached object leading to it; None past limit tracked objects."},
    {"frame_variable", frame_variable, METH_VARARGS,
     "frame_variable(frame, name, default) -> the variable's value, or default: no copy of the frame's "
     "variables is left on it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "looseends.sources._speedups", "Creation records made in C (see _origins.py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    verdicts = PyDict_New();
    readable_name = PyDict_New();
    str_debug = PyUnicode_InternFromString("_debug");
    str_get_ident = PyUnicode_InternFromString("get_ident");
    str_name = PyUnicode_InternFromString("_name");
    str_get_name = PyUnicode_InternFromString("get_name");
    if (verdicts == NULL || readable_name == NULL || str_debug == NULL || str_get_ident == NULL
        || str_name == NULL || str_get_name == NULL) {
        return NULL;
    }
    PyObject *gc = PyImport_ImportModule("gc");
    gc_get_objects = gc != NULL ? PyObject_GetAttrString(gc, "get_objects") : NULL;
    Py_XDECREF(gc);
    if (gc_get_objects == NULL) {
        return NULL;
    }
    if (PyType_Ready(&TrackedType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_def);
    struct timespec tick;  /* how early a task's creation time may read (see task_created_now) */
    double resolution = clock_getres(TASK_CLOCK, &tick) == 0 ? seconds_of(&tick) : 0.0;
    PyObject *value = PyFloat_FromDouble(resolution);
    if (module != NULL && (value == NULL || PyModule_AddObjectRef(module, "TASK_CLOCK_RESOLUTION", value) < 0)) {
        Py_CLEAR(module);
    }
    Py_XDECREF(value);
    return module;
}
