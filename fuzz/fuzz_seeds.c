/*
 * fuzz_seeds.c - writes the fuzzers' seed corpora: small ONNX models that
 * reach the loader's operators and their attributes (fuzz_model_load), and
 * infer request bodies for the harness's model (fuzz_infer_request), and
 * config.pbtxt files (fuzz_model_config).
 * fuzz/make_corpus.sh runs it and adds the models the builds and tests
 * make; add a case here (or a model there) when an operator is added.
 *
 * usage: fuzz_seeds OUT_DIR   (writes OUT_DIR/model/, OUT_DIR/infer/, OUT_DIR/config/)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "graph/onnx_builder.h"

static const char *out_dir;

static void save(const char *kind, const char *name, const void *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, kind, name);
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f)) {
        fprintf(stderr, "fuzz_seeds: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

static void save_model(ob *b, const char *name)
{
    size_t len;
    uint8_t *buf = ob_pack(b, &len);
    save("model", name, buf, len);
    ob_free(b);
}

/* One node of `op` between input x [N,c] (or the given dims) and y, with
 * attributes set by the caller on the returned node. */
static ob *one_node(int64_t opset, const char *op, int ndim, const int64_t *xd, const char *extra,
                    Onnx__NodeProto **node)
{
    ob *b = ob_new(opset);
    ob_input(b, "x", ndim, xd);
    ob_output(b, "y", -1, NULL);
    char inputs[128];
    snprintf(inputs, sizeof inputs, "x%s%s", extra ? "," : "", extra ? extra : "");
    *node = ob_node(b, op, "n", inputs, "y");
    return b;
}

static void models(void)
{
    Onnx__NodeProto *n;
    int64_t x2[2] = {-1, 8}, x4[4] = {-1, 3, 8, 8}, x3[3] = {-1, 5, 4};
    save_model(ob_mlp(4, 8, 2), "mlp.onnx");

    ob *b = one_node(17, "Softmax", 2, x2, NULL, &n);
    ob_attr_i(b, n, "axis", -1);
    save_model(b, "softmax.onnx");

    b = one_node(17, "LayerNormalization", 2, x2, "g", &n);
    int64_t g[1] = {8};
    ob_init_f32(b, "g", 1, g, NULL);
    ob_attr_i(b, n, "axis", -1);
    ob_attr_f(b, n, "epsilon", 1e-5f);
    save_model(b, "layernorm.onnx");

    b = one_node(17, "Gelu", 2, x2, NULL, &n);
    ob_attr_s(b, n, "approximate", "tanh");
    save_model(b, "gelu.onnx");

    b = one_node(13, "Reshape", 2, x2, "s", &n);
    int64_t sv[3] = {-1, 2, 4};
    ob_init_i64(b, "s", 3, sv);
    save_model(b, "reshape.onnx");

    b = one_node(13, "Transpose", 3, x3, NULL, &n);
    int64_t perm[3] = {0, 2, 1};
    ob_attr_ints(b, n, "perm", 3, perm);
    save_model(b, "transpose.onnx");

    /* the operators other engineers are adding, with their attributes:
     * seeds for the loader that has them, refused ones until then */
    b = one_node(17, "Conv", 4, x4, "cw,cb", &n);
    int64_t cw[4] = {4, 3, 3, 3}, cb[1] = {4}, k[2] = {3, 3}, st[2] = {1, 1},
            pads[4] = {1, 1, 1, 1};
    ob_init_f32(b, "cw", 4, cw, NULL);
    ob_init_f32(b, "cb", 1, cb, NULL);
    ob_attr_ints(b, n, "kernel_shape", 2, k);
    ob_attr_ints(b, n, "strides", 2, st);
    ob_attr_ints(b, n, "pads", 4, pads);
    ob_attr_ints(b, n, "dilations", 2, st);
    ob_attr_i(b, n, "group", 1);
    save_model(b, "conv.onnx");

    b = one_node(17, "MaxPool", 4, x4, NULL, &n);
    int64_t two[2] = {2, 2};
    ob_attr_ints(b, n, "kernel_shape", 2, two);
    ob_attr_ints(b, n, "strides", 2, two);
    save_model(b, "maxpool.onnx");

    b = one_node(17, "AveragePool", 4, x4, NULL, &n);
    ob_attr_ints(b, n, "kernel_shape", 2, two);
    ob_attr_i(b, n, "count_include_pad", 0);
    save_model(b, "avgpool.onnx");

    b = one_node(17, "BatchNormalization", 4, x4, "s3,b3,m3,v3", &n);
    int64_t c3[1] = {3};
    ob_init_f32(b, "s3", 1, c3, NULL);
    ob_init_f32(b, "b3", 1, c3, NULL);
    ob_init_f32(b, "m3", 1, c3, NULL);
    ob_init_f32(b, "v3", 1, c3, NULL);
    ob_attr_f(b, n, "epsilon", 1e-5f);
    save_model(b, "batchnorm.onnx");

    b = one_node(13, "Gather", 2, x2, "idx", &n);
    int64_t idx[3] = {0, 7, 3};
    ob_init_i64(b, "idx", 3, idx);
    ob_attr_i(b, n, "axis", 1);
    save_model(b, "gather.onnx");

    b = one_node(13, "Concat", 2, x2, "x", &n);
    ob_attr_i(b, n, "axis", 1);
    save_model(b, "concat.onnx");

    b = one_node(13, "Slice", 2, x2, "st,en,ax", &n);
    int64_t s0[1] = {1}, e0[1] = {5}, a0[1] = {1};
    ob_init_i64(b, "st", 1, s0);
    ob_init_i64(b, "en", 1, e0);
    ob_init_i64(b, "ax", 1, a0);
    save_model(b, "slice.onnx");

    b = one_node(13, "Split", 2, x2, NULL, &n);
    ob_attr_i(b, n, "axis", 1);
    save_model(b, "split.onnx");

    b = one_node(13, "Pad", 2, x2, "pp", &n);
    int64_t pp[4] = {0, 1, 0, 1};
    ob_init_i64(b, "pp", 4, pp);
    ob_attr_s(b, n, "mode", "reflect");
    save_model(b, "pad.onnx");

    b = one_node(13, "ReduceMean", 3, x3, NULL, &n);
    int64_t ax[1] = {2};
    ob_attr_ints(b, n, "axes", 1, ax);
    ob_attr_i(b, n, "keepdims", 0);
    save_model(b, "reducemean.onnx");

    b = one_node(13, "Resize", 4, x4, ",sc", &n);
    int64_t four[1] = {4};
    float scales[4] = {1, 1, 2, 2};
    ob_init_f32(b, "sc", 1, four, scales);
    ob_attr_s(b, n, "mode", "linear");
    ob_attr_s(b, n, "coordinate_transformation_mode", "half_pixel");
    ob_attr_s(b, n, "nearest_mode", "round_prefer_floor");
    save_model(b, "resize.onnx");

    b = one_node(13, "Resize", 4, x4, ",sc", &n);
    ob_init_f32(b, "sc", 1, four, scales);
    ob_attr_s(b, n, "mode", "cubic");
    ob_attr_f(b, n, "cubic_coeff_a", -0.5f);
    ob_attr_s(b, n, "coordinate_transformation_mode", "align_corners");
    save_model(b, "resize_cubic.onnx");

    b = one_node(14, "LSTM", 3, x3, "W,R,B", &n);
    int64_t wd[3] = {1, 12, 4}, rd[3] = {1, 12, 3}, bd2[2] = {1, 24};
    ob_init_f32(b, "W", 3, wd, NULL);
    ob_init_f32(b, "R", 3, rd, NULL);
    ob_init_f32(b, "B", 2, bd2, NULL);
    ob_attr_i(b, n, "hidden_size", 3);
    ob_attr_s(b, n, "direction", "forward");
    ob_attr_i(b, n, "layout", 1);
    save_model(b, "lstm.onnx");

    b = one_node(14, "GRU", 3, x3, "W,R", &n);
    int64_t gw[3] = {1, 9, 4}, gr[3] = {1, 9, 3};
    ob_init_f32(b, "W", 3, gw, NULL);
    ob_init_f32(b, "R", 3, gr, NULL);
    ob_attr_i(b, n, "hidden_size", 3);
    ob_attr_i(b, n, "linear_before_reset", 1);
    save_model(b, "gru.onnx");

    b = one_node(13, "Cast", 2, x2, NULL, &n);
    ob_attr_i(b, n, "to", 7);
    save_model(b, "cast.onnx");

    b = one_node(13, "Clip", 2, x2, NULL, &n);
    save_model(b, "clip.onnx");

    b = one_node(13, "CumSum", 2, x2, "a1", &n);
    int64_t one[1] = {1};
    ob_init_i64(b, "a1", 1, one);
    ob_attr_i(b, n, "exclusive", 1);
    ob_attr_i(b, n, "reverse", 1);
    save_model(b, "cumsum.onnx");

    b = one_node(13, "DepthToSpace", 4, x4, NULL, &n);
    ob_attr_i(b, n, "blocksize", 2);
    ob_attr_s(b, n, "mode", "CRD");
    save_model(b, "depthtospace.onnx");

    b = one_node(13, "Trilu", 3, x3, NULL, &n);
    ob_attr_i(b, n, "upper", 0);
    save_model(b, "trilu.onnx");

    /* x + ScatterND(data, [[1],[3]], updates): folded at load, as
     * swin_t's attention mask is */
    b = ob_new(18);
    ob_input(b, "x", 3, x3);
    ob_output(b, "y", -1, NULL);
    int64_t sd[2] = {5, 4}, si[2] = {1, 3}, sid[2] = {2, 1}, su[2] = {2, 4};
    ob_init_f32(b, "data", 2, sd, NULL);
    OB_PUSH(b, b->graph.initializer, b->graph.n_initializer,
            ob_tensor(b, "idx", 7, 2, sid, si, sizeof si));
    ob_init_f32(b, "upd", 2, su, NULL);
    ob_attr_s(b, ob_node(b, "ScatterND", "sc", "data,idx,upd", "s"), "reduction", "max");
    ob_node(b, "Add", "add", "x,s", "y");
    save_model(b, "scatternd.onnx");

    /* x [N,5,4] times a constant over its last label, "..." and spaces */
    b = one_node(17, "Einsum", 3, x3, "w", &n);
    int64_t ed[2] = {4, 3};
    ob_init_f32(b, "w", 2, ed, NULL);
    ob_attr_s(b, n, "equation", "... i j, j k -> ... k i");
    save_model(b, "einsum.onnx");

    /* x [N,3,8,8] sampled at a grid [N,4,4,2], the model's second input */
    b = one_node(16, "GridSample", 4, x4, "grid", &n);
    int64_t gd[4] = {-1, 4, 4, 2};
    ob_input(b, "grid", 4, gd);
    ob_attr_s(b, n, "mode", "nearest");
    ob_attr_s(b, n, "padding_mode", "reflection");
    ob_attr_i(b, n, "align_corners", 1);
    save_model(b, "gridsample.onnx");

    /* x [N,5,4] minus EyeLike (k 1, int64 then cast) of a constant [5,4] */
    b = ob_new(17);
    ob_input(b, "x", 3, x3);
    ob_output(b, "y", -1, NULL);
    int64_t ed2[2] = {5, 4};
    ob_init_f32(b, "m", 2, ed2, NULL);
    Onnx__NodeProto *eye = ob_node(b, "EyeLike", "eye", "m", "i");
    ob_attr_i(b, eye, "k", 1);
    ob_attr_i(b, eye, "dtype", 1);
    ob_node(b, "Sub", "sub", "x,i", "y");
    save_model(b, "eyelike.onnx");

    /* x + ScatterElements(data [5,4], idx [5,2], upd [5,2]) along the last
     * axis with reduction mul: folded at load */
    b = ob_new(18);
    ob_input(b, "x", 3, x3);
    ob_output(b, "y", -1, NULL);
    int64_t sed[2] = {5, 2}, sev[10] = {0, 3, 1, -1, 2, 2, 3, 0, 1, 1};
    ob_init_f32(b, "sdata", 2, sd, NULL);
    OB_PUSH(b, b->graph.initializer, b->graph.n_initializer,
            ob_tensor(b, "sidx", 7, 2, sed, sev, sizeof sev));
    ob_init_f32(b, "supd", 2, sed, NULL);
    n = ob_node(b, "ScatterElements", "se", "sdata,sidx,supd", "s");
    ob_attr_i(b, n, "axis", -1);
    ob_attr_s(b, n, "reduction", "mul");
    ob_node(b, "Add", "add", "x,s", "y");
    save_model(b, "scatterelements.onnx");

    b = one_node(13, "Flatten", 4, x4, NULL, &n);
    ob_attr_i(b, n, "axis", 1);
    save_model(b, "flatten.onnx");

    b = one_node(13, "Shape", 2, x2, NULL, &n);
    save_model(b, "shape.onnx");

    /* the operators of 2026-12-07's evening, with every attribute they read */
    b = one_node(17, "TopK", 2, x2, "kk", &n);
    int64_t kk = 3;
    ob_init_i64(b, "kk", 1, &kk);
    ob_attr_i(b, n, "axis", -1);
    ob_attr_i(b, n, "largest", 0);
    ob_attr_i(b, n, "sorted", 1);
    ob_names(b, "y,yi", &n->output, &n->n_output);
    save_model(b, "topk.onnx");

    b = ob_new(17);
    ob_input(b, "x", 2, x2);
    ob_output(b, "y", -1, NULL);
    /* indices from x (float indices are read as their integer part): a
     * OneHot of constants folds at load, and a fuzzed depth makes that
     * tens of megabytes, slow under coverage */
    int64_t ohd = 5, two1 = 2, ax2 = 2;
    OB_PUSH(b, b->graph.initializer, b->graph.n_initializer,
            ob_tensor(b, "odepth", 7, 0, NULL, &ohd, sizeof ohd));
    OB_PUSH(b, b->graph.initializer, b->graph.n_initializer,
            ob_tensor(b, "ovals", 1, 1, &two1, (const float[]){0.0f, 1.0f}, 8));
    n = ob_node(b, "OneHot", "oh", "x,odepth,ovals", "oh"); /* [N,8,5] */
    ob_attr_i(b, n, "axis", -1);
    n = ob_node(b, "ReduceL1", "rl1", "oh", "r"); /* [N,8] */
    ob_attr_ints(b, n, "axes", 1, &ax2);
    ob_attr_i(b, n, "keepdims", 0);
    ob_node(b, "Add", "add", "x,r", "y");
    save_model(b, "onehot.onnx");

    b = one_node(20, "IsInf", 2, x2, NULL, &n);
    ob_attr_i(b, n, "detect_negative", 0);
    ob_attr_i(b, n, "detect_positive", 1);
    b->graph.output[0]->type->tensor_type->elem_type = 9; /* bool */
    save_model(b, "isinf.onnx");
    b = one_node(20, "IsNaN", 2, x2, NULL, &n);
    b->graph.output[0]->type->tensor_type->elem_type = 9;
    save_model(b, "isnan.onnx");

    static const char *const acts[] = {"Elu", "Selu", "Celu", "ThresholdedRelu", "Shrink"};
    for (int i = 0; i < 5; i++) {
        char nm[64];
        b = one_node(18, acts[i], 2, x2, NULL, &n);
        ob_attr_f(b, n, i == 4 ? "lambd" : "alpha", 0.7f);
        ob_attr_f(b, n, i == 1 ? "gamma" : "bias", 1.1f);
        snprintf(nm, sizeof nm, "act-%s.onnx", acts[i]);
        save_model(b, nm);
    }
    b = one_node(18, "Mish", 2, x2, NULL, &n);
    save_model(b, "mish.onnx");
    b = one_node(18, "Softsign", 2, x2, NULL, &n);
    save_model(b, "softsign.onnx");

    b = ob_new(14);
    int64_t rx[3] = {-1, 4, 3}, rw[3] = {2, 2, 3}, rr[3] = {2, 2, 2}, rb[2] = {2, 4};
    ob_input(b, "x", 3, rx);
    ob_output(b, "y", -1, NULL);
    ob_init_f32(b, "W", 3, rw, NULL);
    ob_init_f32(b, "R", 3, rr, NULL);
    ob_init_f32(b, "B", 2, rb, NULL);
    n = ob_node(b, "RNN", "rnn", "x,W,R,B", "y,yh");
    ob_attr_i(b, n, "hidden_size", 2);
    ob_attr_i(b, n, "layout", 1);
    ob_attr_f(b, n, "clip", 3.0f);
    ob_attr_s(b, n, "direction", "bidirectional");
    Onnx__AttributeProto *ra =
        ob_attr(b, n, "activations", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS);
    ra->strings = ob_alloc(b, 2 * sizeof *ra->strings);
    for (int i = 0; i < 2; i++)
        ra->strings[i].data = (uint8_t *)ob_str(b, "Relu"), ra->strings[i].len = 4;
    ra->n_strings = 2;
    save_model(b, "rnn.onnx");

    /* If on Shape(x)[1] == 8, both branches reading x */
    b = ob_new(17);
    ob_input(b, "x", 2, x2);
    ob_output(b, "y", -1, NULL);
    int64_t one1 = 1, eight = 8;
    OB_PUSH(b, b->graph.initializer, b->graph.n_initializer,
            ob_tensor(b, "one", 7, 0, NULL, &one1, 8));
    OB_PUSH(b, b->graph.initializer, b->graph.n_initializer,
            ob_tensor(b, "eight", 7, 0, NULL, &eight, 8));
    ob_node(b, "Shape", "shape", "x", "s");
    ob_node(b, "Gather", "g", "s,one", "s1");
    ob_node(b, "Equal", "eq", "s1,eight", "cond");
    Onnx__NodeProto *ifn = ob_node(b, "If", "if", "cond", "y");
    for (int br = 0; br < 2; br++) {
        ob_node(b, br ? "Neg" : "Relu", br ? "neg" : "relu", "x", br ? "e_out" : "t_out");
        Onnx__AttributeProto *ga = ob_attr(b, ifn, br ? "else_branch" : "then_branch",
                                           ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
        Onnx__GraphProto *gp = ob_alloc(b, sizeof *gp);
        onnx__graph_proto__init(gp);
        gp->name = ob_str(b, br ? "else" : "then");
        OB_PUSH(b, gp->node, gp->n_node, b->graph.node[b->graph.n_node - 1]);
        b->graph.n_node--;
        OB_PUSH(b, gp->output, gp->n_output, ob_value_info(b, br ? "e_out" : "t_out", 1, -1, NULL));
        ga->g = gp;
    }
    save_model(b, "if.onnx");

    /* 3-D: Conv (groups, dilation, pads), MaxPool ceil, ConvTranspose
     * output_padding, AveragePool count_include_pad */
    int64_t x5[5] = {-1, 2, 5, 6, 6}, w5[5] = {4, 1, 3, 2, 3}, k3[3] = {3, 2, 3},
            p6[6] = {1, 0, 1, 1, 0, 1}, s3[3] = {2, 1, 1}, d3[3] = {1, 2, 1}, pk3[3] = {2, 2, 2},
            tw5[5] = {4, 2, 1, 2, 2}, op3[3] = {0, 1, 0};
    b = ob_new(17);
    ob_input(b, "x", 5, x5);
    ob_output(b, "y", -1, NULL);
    ob_init_f32(b, "W", 5, w5, NULL);
    ob_init_f32(b, "TW", 5, tw5, NULL);
    n = ob_node(b, "Conv", "conv", "x,W", "c");
    ob_attr_ints(b, n, "kernel_shape", 3, k3);
    ob_attr_ints(b, n, "pads", 6, p6);
    ob_attr_ints(b, n, "strides", 3, s3);
    ob_attr_ints(b, n, "dilations", 3, d3);
    ob_attr_i(b, n, "group", 2);
    n = ob_node(b, "MaxPool", "mp", "c", "m");
    ob_attr_ints(b, n, "kernel_shape", 3, pk3);
    ob_attr_ints(b, n, "strides", 3, pk3);
    ob_attr_i(b, n, "ceil_mode", 1);
    n = ob_node(b, "ConvTranspose", "ct", "m,TW", "t");
    ob_attr_ints(b, n, "kernel_shape", 3, (const int64_t[]){1, 2, 2});
    ob_attr_ints(b, n, "strides", 3, (const int64_t[]){1, 2, 2});
    ob_attr_ints(b, n, "output_padding", 3, op3);
    ob_attr_i(b, n, "group", 2);
    n = ob_node(b, "AveragePool", "ap", "t", "y");
    ob_attr_ints(b, n, "kernel_shape", 3, pk3);
    ob_attr_ints(b, n, "pads", 6, (const int64_t[]){1, 1, 1, 0, 0, 0});
    ob_attr_i(b, n, "count_include_pad", 1);
    save_model(b, "conv3d.onnx");

    b = one_node(13, "GatherElements", 2, x2, "gei", &n);
    int64_t ged[2] = {1, 3}, gev[3] = {0, 7, -1};
    OB_PUSH(b, b->graph.initializer, b->graph.n_initializer,
            ob_tensor(b, "gei", 7, 2, ged, gev, sizeof gev));
    ob_attr_i(b, n, "axis", 1);
    save_model(b, "gatherelements.onnx");

    /* GatherND, batch_dims 1: x [N, 5, 4], indices [N, 2, 1] are not
     * constant per sample here, so a constant [1, 2, 1] one is refused at
     * load (its batch dim differs from data's): the fuzzer mutates both */
    b = one_node(13, "GatherND", 3, x3, "gni", &n);
    int64_t gnd[3] = {1, 2, 1}, gnv[2] = {4, -1};
    OB_PUSH(b, b->graph.initializer, b->graph.n_initializer,
            ob_tensor(b, "gni", 7, 3, gnd, gnv, sizeof gnv));
    ob_attr_i(b, n, "batch_dims", 1);
    save_model(b, "gathernd.onnx");

    /* GatherND of a constant table by per-sample index pairs */
    b = ob_new(13);
    int64_t tid[3] = {-1, 3, 2}, tdd[2] = {4, 3};
    ob_input(b, "ids", 3, tid);
    b->graph.input[0]->type->tensor_type->elem_type = 7;
    ob_output(b, "y", -1, NULL);
    ob_init_f32(b, "table", 2, tdd, NULL);
    ob_node(b, "GatherND", "gn", "table,ids", "y");
    save_model(b, "gathernd-table.onnx");
}

static void infer(void)
{
    char body[8192];
    const char *x4 = "{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,4],\"data\":[1,2,3,4]}";
    const char *z2 = "{\"name\":\"z\",\"datatype\":\"FP32\",\"shape\":[1,2],\"data\":[0.5,-0.5]}";
    int n = snprintf(body, sizeof body, "{\"inputs\":[%s,%s]}", x4, z2);
    save("infer", "basic.json", body, (size_t)n);
    n = snprintf(body, sizeof body,
                 "{\"id\":\"r\\u00e9q\",\"parameters\":{\"timeout\":100000,\"priority\":1,"
                 "\"binary_data_output\":false},\"inputs\":[%s,%s],\"outputs\":[{\"name\":\"y\"},"
                 "{\"name\":\"h\",\"parameters\":{\"binary_data\":true}}]}",
                 z2, x4);
    save("infer", "params.json", body, (size_t)n);
    n = snprintf(body, sizeof body,
                 "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP16\",\"shape\":[2,4],"
                 "\"data\":[[1.5,2e-3,-3,4],[5,6,7,8e1]]},{\"name\":\"z\",\"datatype\":\"INT64\","
                 "\"shape\":[2,2],\"data\":[1,2,3,-4]}]}");
    save("infer", "nested.json", body, (size_t)n);
    /* binary tensor data: "#<json length>\n" then JSON then the bytes */
    char json[512];
    int j = snprintf(json, sizeof json,
                     "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,4],"
                     "\"parameters\":{\"binary_data_size\":16}},{\"name\":\"z\",\"datatype\":"
                     "\"BF16\",\"shape\":[1,2],\"parameters\":{\"binary_data_size\":4}}],"
                     "\"parameters\":{\"binary_data_output\":true}}");
    n = snprintf(body, sizeof body, "#%d\n%s", j, json);
    float xs[4] = {1, -2, 3.5f, 0};
    uint16_t zs[2] = {0x3f80, 0xbf00};
    memcpy(body + n, xs, sizeof xs);
    memcpy(body + n + sizeof xs, zs, sizeof zs);
    save("infer", "binary.bin", body, (size_t)n + sizeof xs + sizeof zs);
    n = snprintf(body, sizeof body, "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\"");
    save("infer", "truncated.json", body, (size_t)n);
}

/* config.pbtxt: every field model_config.c reads, the syntax's forms, and
 * fields it reports as not applied. */
static void configs(void)
{
    static const char full[] =
        "name: \"m\"\nplatform: \"onnxruntime_onnx\"\nbackend: 'onnxruntime'\n"
        "max_batch_size: 32\ndefault_model_filename: \"model.onnx\"\n"
        "version_policy: { latest { num_versions: 2 } }\n"
        "dynamic_batching {\n  max_queue_delay_microseconds: 100\n"
        "  preferred_batch_size: [ 4, 8 ]\n  priority_levels: 2\n  default_priority_level: 1\n"
        "  default_queue_policy { timeout_action: REJECT default_timeout_microseconds: 5000\n"
        "    allow_timeout_override: true max_queue_size: 16 }\n  preserve_ordering: false\n}\n"
        "instance_group [ { count: 2 kind: KIND_CPU }, { count: 1 gpus: [0] } ]\n"
        "input [ { name: \"input\" data_type: TYPE_FP32 dims: [ 256 ] } ]\n"
        "output < name: \"y\" dims: [-1, 0x10] >\n"
        "parameters { key: \"k\" value { string_value: \"\\x41\\101\\u00e9\" \"more\" } }\n";
    save("config", "full.pbtxt", full, sizeof full - 1);
    static const char specific[] = "version_policy { specific { versions: [1, 3] } }; "
                                   "max_batch_size: 0, optimization { graph: { level: -1 } }";
    save("config", "specific.pbtxt", specific, sizeof specific - 1);
    static const char all[] = "# every version\nversion_policy: { all: {} }\n"
                              "dynamic_batching { }\nmodel_warmup [ ]\n";
    save("config", "all.pbtxt", all, sizeof all - 1);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds OUT_DIR\n");
        return 2;
    }
    out_dir = argv[1];
    char path[1024];
    mkdir(out_dir, 0755);
    snprintf(path, sizeof path, "%s/model", out_dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/infer", out_dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/config", out_dir);
    mkdir(path, 0755);
    models();
    infer();
    configs();
    return 0;
}
