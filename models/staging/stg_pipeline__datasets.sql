with

source as (

    select * from {{ source('pipeline', 'datasets') }}

),

renamed as (

    select
        dataset_id,
        document_id,
        total_tokens,
        avg_tokens_per_chunk,
        total_char_length,
        clean_text_length,
        cluster,
        dataset_type,
        text,
        created_at,
        updated_at,
    from source

)

select * from renamed
