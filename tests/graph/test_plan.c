/* test_plan.c - graph_plan_make: execution order and arena sharing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "graph/graph.h"

static int add_val(graph *g, const char *name, int64_t d0, int64_t d1)
{
    int64_t dims[2] = {d0, d1};
    int v = graph_add_value(g, name, FERRY_F32, 2, dims);
    assert_true(v >= 0);
    return v;
}

static int add_node1(graph *g, op_kind op, const char *name, int a, int b, int out)
{
    int in[2] = {a, b};
    int n = graph_add_node(g, op, name, b >= 0 ? 2 : 1, in, 1, &out);
    assert_true(n >= 0);
    return n;
}

static int root_of(const graph *g, int v)
{
    while (g->values[v].alias >= 0)
        v = g->values[v].alias;
    return v;
}

/* Independent check: recompute each arena value's live step range from the
 * plan's order and assert that values whose ranges overlap have disjoint
 * bytes, that every arena value fits, and that non-arena values are
 * SIZE_MAX. */
static void check_plan(const graph *g, const graph_plan *p)
{
    int nv = g->n_values;
    int *first = malloc(sizeof(int) * (size_t)nv), *last = malloc(sizeof(int) * (size_t)nv);
    assert_non_null(first);
    assert_non_null(last);
    for (int v = 0; v < nv; v++)
        first[v] = last[v] = -1;
    for (int s = 0; s < p->n_order; s++) {
        const graph_node *n = &g->nodes[p->order[s]];
        assert_false(n->dead);
        for (int k = 0; k < n->n_out; k++)
            if (first[n->out[k]] < 0)
                first[n->out[k]] = s;
        for (int k = 0; k < n->n_in; k++) {
            if (n->in[k] < 0)
                continue;
            int r = root_of(g, n->in[k]);
            /* every input is produced earlier (or is const/input) */
            if (!g->values[r].is_const && !g->values[r].is_input)
                assert_true(first[r] >= 0 && first[r] < s);
            if (last[r] < s)
                last[r] = s;
        }
    }
    for (int v = 0; v < nv; v++) {
        const graph_value *gv = &g->values[v];
        int arena = !gv->is_const && !gv->is_input && !gv->is_output && gv->alias < 0 &&
                    first[v] >= 0;
        if (!arena) {
            assert_int_equal(p->offset[v], SIZE_MAX);
            continue;
        }
        if (gv->is_output || last[v] < first[v])
            last[v] = last[v] < first[v] ? first[v] : last[v];
        assert_int_equal(p->offset[v] % 64, 0);
        size_t sz = (size_t)graph_value_numel(gv, p->max_batch) * p->elem_bytes;
        assert_true(p->offset[v] + sz <= p->arena_bytes);
    }
    for (int a = 0; a < nv; a++) {
        if (p->offset[a] == SIZE_MAX)
            continue;
        size_t sa = (size_t)graph_value_numel(&g->values[a], p->max_batch) * p->elem_bytes;
        for (int b = a + 1; b < nv; b++) {
            if (p->offset[b] == SIZE_MAX)
                continue;
            size_t sb = (size_t)graph_value_numel(&g->values[b], p->max_batch) * p->elem_bytes;
            int overlap_time = first[a] <= last[b] && first[b] <= last[a];
            int overlap_bytes = p->offset[a] < p->offset[b] + sb && p->offset[b] < p->offset[a] + sa;
            if (overlap_time && overlap_bytes)
                fail_msg("values '%s' [%d,%d] and '%s' [%d,%d] share bytes", g->values[a].name,
                         first[a], last[a], g->values[b].name, first[b], last[b]);
        }
    }
    free(first);
    free(last);
}

/* x -> fc1 -> relu -> fc2 -> relu -> fc3 -> relu -> fc4 -> y */
static void test_chain_reuses_memory(void **state)
{
    (void)state;
    graph *g = graph_new();
    assert_non_null(g);
    int x = add_val(g, "x", FERRY_DIM_BATCH, 256);
    g->values[x].is_input = 1;
    int prev = x;
    size_t sum = 0;
    char name[32];
    for (int l = 0; l < 4; l++) {
        snprintf(name, sizeof name, "w%d", l);
        int w = add_val(g, name, 256, 256);
        g->values[w].is_const = 1;
        snprintf(name, sizeof name, "h%d", l);
        int h = add_val(g, name, FERRY_DIM_BATCH, 256);
        snprintf(name, sizeof name, "fc%d", l);
        add_node1(g, OP_GEMM, name, prev, w, h);
        prev = h;
        if (l == 3)
            break;
        snprintf(name, sizeof name, "a%d", l);
        int a = add_val(g, name, FERRY_DIM_BATCH, 256);
        snprintf(name, sizeof name, "relu%d", l);
        add_node1(g, OP_RELU, name, h, -1, a);
        prev = a;
        sum += 2 * (size_t)64 * 256 * 4;
    }
    g->values[prev].is_output = 1;
    graph_plan p;
    assert_int_equal(graph_plan_make(g, 64, 4, &p), FERRY_OK);
    assert_int_equal(p.n_order, 7);
    for (int i = 0; i < 7; i++)
        assert_int_equal(p.order[i], i);
    check_plan(g, &p);
    assert_true(p.arena_bytes < sum);
    /* a chain needs exactly two buffers: ping-pong */
    assert_int_equal(p.arena_bytes, 2 * (size_t)64 * 256 * 4);
    assert_int_equal(p.offset[x], SIZE_MAX);
    assert_int_equal(p.offset[prev], SIZE_MAX);
    graph_plan_free(&p);
    graph_free(g);
}

/* Values read by a later node keep their bytes; a view keeps its root alive
 * until the view's last consumer. */
static void test_view_extends_lifetime(void **state)
{
    (void)state;
    graph *g = graph_new();
    int x = add_val(g, "x", FERRY_DIM_BATCH, 8);
    g->values[x].is_input = 1;
    int a = add_val(g, "a", FERRY_DIM_BATCH, 8);
    int v = add_val(g, "v", FERRY_DIM_BATCH, 8);
    int b = add_val(g, "b", FERRY_DIM_BATCH, 8);
    int c = add_val(g, "c", FERRY_DIM_BATCH, 8);
    int y = add_val(g, "y", FERRY_DIM_BATCH, 8);
    g->values[y].is_output = 1;
    add_node1(g, OP_RELU, "r0", x, -1, a);
    int view = add_node1(g, OP_IDENTITY, "id", a, -1, v);
    g->values[v].alias = a;
    add_node1(g, OP_RELU, "r1", x, -1, b);
    add_node1(g, OP_RELU, "r2", b, -1, c);
    add_node1(g, OP_ADD, "add", v, c, y);
    graph_plan p;
    assert_int_equal(graph_plan_make(g, 4, 4, &p), FERRY_OK);
    assert_int_equal(p.n_order, 4);
    for (int i = 0; i < p.n_order; i++)
        assert_int_not_equal(p.order[i], view);
    assert_int_equal(p.offset[v], SIZE_MAX);
    check_plan(g, &p);
    /* a is live through "add": disjoint from b and c */
    assert_true(p.offset[a] != p.offset[b] && p.offset[a] != p.offset[c]);
    /* b dies at r2; c is written at r2: not shared either */
    assert_true(p.offset[b] != p.offset[c]);
    assert_int_equal(p.arena_bytes, 3 * 128);
    graph_plan_free(&p);
    graph_free(g);
}

static void test_dead_nodes_and_order(void **state)
{
    (void)state;
    graph *g = graph_new();
    int x = add_val(g, "x", FERRY_DIM_BATCH, 16);
    g->values[x].is_input = 1;
    int a = add_val(g, "a", FERRY_DIM_BATCH, 16);
    int b = add_val(g, "b", FERRY_DIM_BATCH, 16);
    int y = add_val(g, "y", FERRY_DIM_BATCH, 16);
    g->values[y].is_output = 1;
    /* out of array order on purpose: y's producer first */
    add_node1(g, OP_RELU, "late", b, -1, y);
    int dead = add_node1(g, OP_SIGMOID, "gone", x, -1, a);
    g->nodes[dead].dead = 1;
    add_node1(g, OP_TANH, "early", x, -1, b);
    graph_plan p;
    assert_int_equal(graph_plan_make(g, 2, 4, &p), FERRY_OK);
    assert_int_equal(p.n_order, 2);
    assert_int_equal(p.order[0], 2);
    assert_int_equal(p.order[1], 0);
    assert_int_equal(p.offset[a], SIZE_MAX);
    assert_int_not_equal(p.offset[b], SIZE_MAX);
    check_plan(g, &p);
    graph_plan_free(&p);
    graph_free(g);
}

/* Random DAGs: whatever the structure, overlapping lifetimes never share. */
static void test_random_dags(void **state)
{
    (void)state;
    srand(1234);
    for (int iter = 0; iter < 200; iter++) {
        graph *g = graph_new();
        int nx = 1 + rand() % 2;
        int vals[64], nvals = 0;
        char name[32];
        for (int i = 0; i < nx; i++) {
            snprintf(name, sizeof name, "x%d", i);
            vals[nvals] = add_val(g, name, FERRY_DIM_BATCH, 1 + rand() % 40);
            g->values[vals[nvals++]].is_input = 1;
        }
        int nnodes = 2 + rand() % 30;
        for (int i = 0; i < nnodes && nvals < 64; i++) {
            int a = vals[rand() % nvals], b = rand() % 2 ? vals[rand() % nvals] : -1;
            snprintf(name, sizeof name, "t%d", i);
            int o = add_val(g, name, FERRY_DIM_BATCH, 1 + rand() % 40);
            snprintf(name, sizeof name, "n%d", i);
            add_node1(g, b >= 0 ? OP_ADD : OP_RELU, name, a, b, o);
            if (rand() % 5 == 0) { /* a view of o */
                snprintf(name, sizeof name, "v%d", i);
                int vv = add_val(g, name, FERRY_DIM_BATCH, g->values[o].dims[1]);
                snprintf(name, sizeof name, "id%d", i);
                add_node1(g, OP_IDENTITY, name, o, -1, vv);
                g->values[vv].alias = o;
                o = vv;
            }
            if (rand() % 7 == 0)
                g->values[o].is_output = 1;
            vals[nvals++] = o;
        }
        g->values[vals[nvals - 1]].is_output = 1;
        graph_plan p;
        assert_int_equal(graph_plan_make(g, 1 + rand() % 8, 4, &p), FERRY_OK);
        check_plan(g, &p);
        graph_plan_free(&p);
        graph_free(g);
    }
}

static void test_bad_graph(void **state)
{
    (void)state;
    graph *g = graph_new();
    int x = add_val(g, "x", FERRY_DIM_BATCH, 4);
    int y = add_val(g, "y", FERRY_DIM_BATCH, 4);
    g->values[y].is_output = 1;
    /* x is neither input nor const nor produced */
    add_node1(g, OP_RELU, "orphan", x, -1, y);
    graph_plan p;
    assert_int_equal(graph_plan_make(g, 2, 4, &p), FERRY_EINTERNAL);
    assert_non_null(strstr(ferry_last_error(), "orphan"));
    assert_null(p.order);
    graph_plan_free(&p);
    assert_int_equal(graph_plan_make(g, 0, 4, &p), FERRY_EINVAL);
    graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_reuses_memory),
        cmocka_unit_test(test_view_extends_lifetime),
        cmocka_unit_test(test_dead_nodes_and_order),
        cmocka_unit_test(test_random_dags),
        cmocka_unit_test(test_bad_graph),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
